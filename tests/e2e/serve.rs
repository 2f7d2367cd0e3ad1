//! `pismo serve` through the real binary: it prints its URL (port 0 picks a free one),
//! answers over HTTP with the sandbox's registry, and a busy address is an error. The API
//! itself is tested in `http/tests/api/`.

use std::io::{Read, Write};
use std::net::TcpStream;

use pismo_tests::{train_tiny_model, Pismo};

/// One `Connection: close` request; returns the whole response as text.
pub(crate) fn request(addr: &str, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to pismo serve");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_prints_its_url_and_answers_with_the_registry() {
    let p = Pismo::new();
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@1");
    let server = p.serve("127.0.0.1:0", &[]);
    let addr = server.addr().to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    let ping = request(
        &addr,
        "GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    let models = request(
        &addr,
        "GET /api/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert!(models.contains("\"tiny@1\""), "{models}");
    let body = format!("{{\"pixels\":[{}]}}", vec!["0.5"; 784].join(","));
    let head = format!(
        "POST /api/predict?model=tiny@1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A uniform image has no ink: a 400 naming the problem, from the real binary.
    let answer = request(&addr, &head, body.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("no ink"), "{answer}");

    // A second server on the same address cannot start: exit status 1, one error line.
    let busy = p.run(&["serve", "--addr", &addr]);
    assert_eq!(busy.code, Some(1), "{}", busy.stderr);
    assert!(
        busy.stderr.starts_with("error: cannot listen on"),
        "{}",
        busy.stderr
    );
}

/// Issue 29: a token of only whitespace was taken, and no request could ever send it.
#[test]
fn issue_29_serve_refuses_a_token_of_only_whitespace() {
    let p = Pismo::new();
    for token in [" ", "\t", ""] {
        let out = p.run(&["serve", "--addr", "127.0.0.1:0", "--token", token]);
        assert_eq!(out.code, Some(1), "{token:?}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with("error: will not serve on 127.0.0.1:0: the token"),
            "{token:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}

#[test]
fn serve_on_a_non_loopback_address_makes_and_requires_a_token() {
    let p = Pismo::new();
    let mut server = p.serve("0.0.0.0:0", &[]);
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let token_line = server.stderr_line("?token=");
    let token = token_line
        .trim()
        .rsplit("?token=")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 32, "{token_line}");
    let addr = format!("127.0.0.1:{port}");
    let put = |auth: &str| {
        let body = r#"{"model":"nope@1"}"#;
        request(
            &addr,
            &format!(
                "PUT /api/aliases/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            body.as_bytes(),
        )
    };
    let refused = put("");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    // Adapting a model to the corrections is guarded the same way.
    let adapt = request(
        &addr,
        "POST /api/adapt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
        b"{}",
    );
    assert!(adapt.starts_with("HTTP/1.1 401"), "{adapt}");
    assert!(adapt.contains("token"), "{adapt}");
    // With the printed token the request gets through to the registry (which has no nope@1).
    let through = put(&format!("Authorization: Bearer {token}\r\n"));
    assert!(through.starts_with("HTTP/1.1 404"), "{through}");
}

/// Issue 28: a token the user gives (`--token` or `$PISMO_TOKEN`) never reaches the log;
/// only a token the server made itself is printed, so that it can be used.
#[test]
fn issue28_serve_never_prints_a_token_it_was_given() {
    let p = Pismo::new();
    let secret = "issue28-given-token-7f3a";
    let mut server = p.serve("0.0.0.0:0", &["--token", secret]);
    let line = server.stderr_line("need the token");
    assert!(
        line.contains("--token") && line.contains("?token=TOKEN"),
        "{line}"
    );
    let log = server.stop();
    assert!(
        !log.contains(secret),
        "the given token is in the log:\n{log}"
    );

    let mut command = p.command(&["serve", "--addr", "0.0.0.0:0"]);
    command
        .env("PISMO_TOKEN", secret)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("start pismo serve");
    // Its first line on stdout is the URL: by then stderr has said what it will say.
    let mut url = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped stdout")),
        &mut url,
    )
    .expect("read the URL");
    assert!(url.starts_with("http://"), "{url}");
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait for pismo serve");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("$PISMO_TOKEN"), "{log}");
    assert!(
        !log.contains(secret),
        "the given token is in the log:\n{log}"
    );
}
