//! The eval PR plot in the tuning view, in headless Chromium: a plot drawn by the engine's
//! own `lookout eval` plotter (axes, curves, operating points) is configured as a model's
//! `pr_plot`, served at `/api/tuning/pr/{model}`, and shown in the tuning view, where the
//! screenshot has the operating point's colour at the plotted (recall, precision) and the
//! axis colour along the axes.

mod common;

use std::collections::BTreeMap;

use common::*;
use lookout_infer::eval::{
    plot_pr, plot_px, ClassReport, EvalReport, NegativesReport, PLOT_AREA, PLOT_COLOURS, PLOT_H,
    PLOT_W,
};

#[test]
fn ui_tuning_view_shows_the_models_pr_plot_with_axes_and_operating_point() {
    let dir = tempfile::tempdir().unwrap();
    // A report as `lookout eval` makes it: one class, a falling curve, the operating point
    // at (0.6, 0.8).
    let curve: Vec<(f64, f64)> = (0..=20)
        .map(|i| {
            let r = i as f64 / 25.0;
            (r, 1.0 - 0.4 * r * r)
        })
        .collect();
    let mut classes = BTreeMap::new();
    classes.insert(
        "smoke".to_string(),
        ClassReport {
            ap50: 0.71,
            positives: 120,
            precision_50: Some(0.8),
            recall_50: 0.6,
            precision_25: Some(0.7),
            recall_25: 0.7,
            image_recall_50: 0.75,
            curve,
        },
    );
    let report = EvalReport {
        classes,
        negatives: NegativesReport {
            images: 0,
            hit_25: 0,
            hit_50: 0,
        },
        images: 140,
        unlabelled: 0,
        skipped: Vec::new(),
        seconds_per_image: 0.05,
    };
    plot_pr(&report, &dir.path().join("smoke-pr.png")).unwrap();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/smoke-fire.toml");
    let f = start_in(
        dir,
        &format!(
            "{CONFIG}\n[models.smoke]\nmanifest = \"{manifest}\"\npr_plot = \"smoke-pr.png\"\n"
        ),
    );

    let list = http(f.addr, "GET", "/api/tuning/pr", None, None).json();
    assert_eq!(
        list["plots"],
        serde_json::json!([{"model": "smoke", "url": "/api/tuning/pr/smoke"}])
    );
    let png = http(f.addr, "GET", "/api/tuning/pr/smoke", None, None);
    assert_eq!(png.status, 200);
    assert!(png
        .headers
        .to_ascii_lowercase()
        .contains("content-type: image/png"));
    assert_eq!(
        http(f.addr, "GET", "/api/tuning/pr/person", None, None).status,
        404,
        "a model without a plot"
    );

    let d = Driver::start();
    d.goto(&format!("http://{}/", f.addr));
    d.click(".tab[data-view=\"tuning\"]");
    let size = d.wait(
        "the PR plot in the tuning view",
        "const i = document.querySelector('#pr-plots img.pr-plot[data-model=\"smoke\"]'); \
         return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : '';",
    );
    assert_eq!(size, serde_json::json!([PLOT_W, PLOT_H]));
    let rect = d.js(
        "const i = document.querySelector('#pr-plots img.pr-plot'); i.scrollIntoView(); \
         const r = i.getBoundingClientRect(); return [r.left, r.top, r.width, r.height, window.devicePixelRatio];",
    );
    let r: Vec<f64> = rect
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let shot = d.screenshot("ui-tuning-pr.png");
    let shot = image::load_from_memory(&shot).unwrap().to_rgb8();
    // Plot pixel → screenshot pixel.
    let at = |(x, y): (f64, f64)| {
        let sx = (r[0] + x * r[2] / f64::from(PLOT_W)) * r[4];
        let sy = (r[1] + y * r[3] / f64::from(PLOT_H)) * r[4];
        shot.get_pixel(sx as u32, sy as u32).0
    };
    let close =
        |a: [u8; 3], b: [u8; 3], tol: u8| a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= tol);
    // The operating point: the class colour at its centre.
    let op = at(plot_px(0.6, 0.8));
    assert!(
        close(op, PLOT_COLOURS[0], 40),
        "operating point pixel {op:?}, want {:?}",
        PLOT_COLOURS[0]
    );
    // The axes: dark along the left and bottom of the plot area.
    let (left, top, right, bottom) = PLOT_AREA;
    for k in 1..4 {
        let f = f64::from(k) / 4.0;
        let y_axis = at((left - 0.5, top + (bottom - top) * f));
        let x_axis = at((left + (right - left) * f, bottom + 0.5));
        assert!(
            y_axis.iter().all(|c| *c < 120) && x_axis.iter().all(|c| *c < 120),
            "axis pixels {y_axis:?} {x_axis:?}"
        );
    }
    // Away from curve, grid and axes: the white background.
    let bg = at(plot_px(0.95, 0.05));
    assert!(close(bg, [255, 255, 255], 30), "background {bg:?}");
}
