//! Box corrections in the web UI, in headless Chromium over WebDriver, against a real
//! server with a seeded store: an operator opens an incident's snapshot frame, marks the
//! detector's box wrong, draws the smoke it missed with the mouse and saves; the store
//! holds exactly the drawn box as the frame's labels, with who saved it.

mod common;

use common::*;

#[test]
fn ui_operator_corrects_a_snapshots_boxes() {
    let f = start();
    let base = format!("http://{}", f.addr);
    let now = chrono::Utc::now();
    f.alerts
        .record_incident(
            &smoke_incident("lab-1", "tower1", now, 0.7),
            Some(&frame("tower1", 5, now)),
        )
        .unwrap();
    let snap = f
        .alerts
        .store()
        .incident("lab-1")
        .unwrap()
        .unwrap()
        .snapshot_id
        .unwrap();
    let before = f.alerts.store().snapshot_boxes(snap).unwrap().unwrap();
    assert!(before.training_frame);
    assert_eq!(before.detected.len(), 1, "{before:?}");

    let d = Driver::start();
    d.goto(&format!("{base}/"));
    d.js(&format!(
        "sessionStorage.setItem('lookout.token', '{OPERATOR}'); return true;"
    ));
    d.goto(&format!("{base}/"));
    d.wait(
        "the incident row",
        "return !!document.querySelector('tr[data-id=\"lab-1\"]');",
    );
    d.click("tr[data-id=\"lab-1\"]");
    d.wait(
        "the correct-boxes button",
        "return !!document.querySelector('#label-btn');",
    );
    d.click("#label-btn");
    d.wait(
        "the frame without drawing and the detector's box",
        "const i = document.querySelector('#labels img.lab-frame'); return i && i.complete && i.naturalWidth === 320 && document.querySelectorAll('#labels svg rect').length === 1;",
    );
    // The detector's box is wrong: untick it.
    d.click("#labels .lab-list input[data-i=\"0\"]");
    // Draw the missed smoke: drag from 10 %/20 % to 40 %/60 % of the frame.
    d.js(
        "const svg = document.querySelector('#labels svg'); const r = svg.getBoundingClientRect();
         document.querySelector('#labels .lab-class').value = 'smoke';
         const ev = (t, fx, fy) => svg.dispatchEvent(new PointerEvent(t, { bubbles: true, clientX: r.left + fx * r.width, clientY: r.top + fy * r.height }));
         ev('pointerdown', 0.1, 0.2); ev('pointerup', 0.4, 0.6); return true;",
    );
    d.wait(
        "the drawn box",
        "return document.querySelectorAll('#labels svg rect').length === 2 && document.querySelectorAll('#labels svg rect[stroke-dasharray]').length === 1;",
    );
    d.screenshot("ui-labels.png");
    d.click("#labels .lab-save");
    d.wait(
        "the saved message",
        "return document.querySelector('#labels .lab-msg').textContent.includes('Saved 1 box');",
    );
    let after = f.alerts.store().snapshot_boxes(snap).unwrap().unwrap();
    let c = after.corrected.expect("corrected boxes stored");
    assert_eq!(c.by, "ana");
    assert_eq!(c.boxes.len(), 1, "{:?}", c.boxes);
    assert_eq!(c.boxes[0].class, "smoke");
    let want = [0.1, 0.2, 0.4, 0.6];
    for (got, want) in c.boxes[0].bbox.iter().zip(want) {
        assert!(
            (got - want).abs() < 0.01,
            "{:?} vs {want:?}",
            c.boxes[0].bbox
        );
    }
    // The detector's boxes are kept as they were.
    assert_eq!(after.detected, before.detected);
}
