//! The web UI in headless Chromium against a server with `read_access = "token"`: the page
//! answers 401 on its first read and asks for a token; once a viewer's token is given the
//! incidents, the live stream, a snapshot and a camera frame load (images and the stream
//! are fetched with the token in a header); the token is kept in sessionStorage only, never
//! in a URL or a cookie.

mod common;

use common::*;

#[test]
fn ui_asks_for_a_token_and_reads_with_it() {
    let f = start_in(
        tempfile::tempdir().unwrap(),
        &format!("[server]\nread_access = \"token\"\n{CONFIG}"),
    );
    let base = format!("http://{}", f.addr);
    let now = chrono::Utc::now();
    f.alerts
        .record_incident(
            &smoke_incident("login-1", "tower1", now, 0.9),
            Some(&frame("tower1", 3, now)),
        )
        .unwrap();
    let d = Driver::start();
    d.goto(&format!("{base}/"));
    d.wait(
        "the sign-in prompt",
        "return !document.querySelector('#login').hidden;",
    );
    assert_eq!(
        d.js("return document.querySelectorAll('tr[data-id]').length;"),
        0,
        "nothing is shown without a token"
    );
    d.screenshot("ui-login.png");

    // A wrong token is refused and the prompt says so.
    d.js("document.querySelector('#login-token').value = 'not-the-right-token'; return true;");
    d.click("#login-go");
    d.wait(
        "the refusal",
        "return !document.querySelector('#login').hidden && document.querySelector('#login-msg').textContent.includes('not accepted');",
    );

    d.js(&format!(
        "document.querySelector('#login-token').value = '{VIEWER}'; return true;"
    ));
    d.click("#login-go");
    d.wait(
        "the signed-in viewer",
        "return document.querySelector('#who').textContent.includes('vera');",
    );
    d.wait(
        "the incident row",
        "return !!document.querySelector('tr[data-id=\"login-1\"]');",
    );
    d.wait(
        "the live stream",
        "return document.querySelector('#live').classList.contains('on');",
    );
    d.click("tr[data-id=\"login-1\"]");
    d.wait("the snapshot in the detail", "const i = document.querySelector('#detail img'); return i && i.complete && i.naturalWidth > 0;");

    // A new incident arrives over the live stream without a reload.
    f.alerts
        .record_incident(&smoke_incident("login-2", "tower2", now, 0.8), None)
        .unwrap();
    d.wait(
        "the live incident",
        "return !!document.querySelector('tr[data-id=\"login-2\"]');",
    );
    d.click(".tab[data-view=\"cameras\"]");
    d.wait("the camera frame", "const i = document.querySelector('.cam img'); return i && i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:');");
    d.screenshot("ui-login-cameras.png");

    // Kept for this tab's session only, never in the URL, local storage or a cookie.
    let kept = d.js("return [sessionStorage.getItem('lookout.token'), localStorage.getItem('lookout.token'), document.cookie, location.href];");
    assert_eq!(kept[0], VIEWER);
    assert!(kept[1].is_null(), "{kept}");
    assert_eq!(kept[2], "");
    assert!(!kept[3].as_str().unwrap().contains(VIEWER));
    // A reload in the same tab stays signed in.
    d.goto(&format!("{base}/"));
    d.wait(
        "the incident row after a reload",
        "return !!document.querySelector('tr[data-id=\"login-1\"]') && document.querySelector('#login').hidden;",
    );
}
