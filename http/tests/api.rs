//! The HTTP API over a real socket, against a real server on `127.0.0.1:0`.
//!
//! The client is a small hand-written HTTP/1.1 helper (no dependency): it writes the request
//! bytes as given and reads a `Content-Length` response, so tests can also send what a
//! well-behaved client library never would (a lying `Content-Length`, no content type).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use pismo_http::{Options, Server};
use pismo_tests::{drawn_digit_png, t10k, train_tiny_model, workspace_root, TempDir};
use serde_json::{json, Value};

/// A started server on a copy of the repository's `models/` (`mnist@1`, `mnist-int8@1`,
/// alias `default` -> `mnist@1`), with an empty runs folder.
struct Fixture {
    server: Server,
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self::with_options(Options::default())
    }

    fn with_options(options: Options) -> Self {
        let dir = TempDir::new("http");
        let models = dir.join("models");
        std::fs::create_dir_all(&models).unwrap();
        for file in ["mnist.v1.pismo", "mnist-int8.v1.pismo", "aliases.json"] {
            std::fs::copy(
                workspace_root().join("models").join(file),
                models.join(file),
            )
            .unwrap();
        }
        let server = Server::start("127.0.0.1:0", models, dir.join("runs"), options).unwrap();
        Self { server, dir }
    }

    fn connect(&self) -> Client {
        Client::new(&self.server.addr().to_string())
    }

    fn request(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Answer {
        self.connect().request(method, path, content_type, body)
    }

    fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None, b"")
    }

    fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.request(
            "POST",
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }
}

struct Client {
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and a JSON `{"error": …}` body; returns the message.
    fn expect_error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("Content-Type"), Some("application/json"));
        let msg = self.json()["error"]
            .as_str()
            .expect("an error message")
            .to_owned();
        assert!(!msg.is_empty());
        msg
    }
}

impl Client {
    fn new(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
        self.read_answer()
    }

    fn read_answer(&mut self) -> Answer {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header line");
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// The first t10k image of `digit`, with its index.
fn first_of(digit: u8) -> [u8; 784] {
    let data = t10k();
    let i = data.labels.iter().position(|&l| l == digit).unwrap();
    data.images[i]
}

fn probabilities_sum_to_one(v: &Value) {
    let p = v["probabilities"].as_array().unwrap();
    assert_eq!(p.len(), 10);
    let sum: f64 = p.iter().map(|x| x.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3, "{sum}");
}

#[test]
fn predict_png_of_a_drawn_mnist_digit_gives_that_digit() {
    let f = Fixture::new();
    let data = t10k();
    let mut right = 0;
    for i in 0..20 {
        let png = drawn_digit_png(&data.images[i], 300);
        let a = f.request("POST", "/api/predict", Some("image/png"), &png);
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let v = a.json();
        assert_eq!(v["model"], "mnist@1");
        probabilities_sum_to_one(&v);
        assert_eq!(v["input"].as_array().unwrap().len(), 784);
        if v["label"] == u64::from(data.labels[i]) {
            right += 1;
        }
    }
    // The first t10k image is a 7; the model is ~98 % accurate on drawn digits.
    assert!(right >= 19, "{right}/20 right");
}

#[test]
fn predict_pixels_and_image_json() {
    let f = Fixture::new();
    let seven = first_of(7);
    let pixels: Vec<f64> = seven.iter().map(|&b| f64::from(b) / 255.0).collect();
    let v = f
        .post_json("/api/predict", &json!({ "pixels": pixels }))
        .json();
    assert_eq!(v["label"], 7);
    probabilities_sum_to_one(&v);
    // A 28x28 MNIST-like input is used as is (up to the byte rounding).
    let input = v["input"].as_array().unwrap();
    for (a, b) in input.iter().zip(&pixels) {
        assert!((a.as_f64().unwrap() - b).abs() < 1e-3);
    }

    // A drawing as grey bytes: dark ink on a white 200x200 canvas.
    let three = first_of(3);
    let (side, mut data) = (200usize, vec![255u8; 200 * 200]);
    for y in 0..140 {
        for x in 0..140 {
            data[(30 + y) * side + 20 + x] = 255 - three[(y / 5) * 28 + x / 5];
        }
    }
    let body = json!({ "image": { "width": side, "height": side, "data": data } });
    let v = f.post_json("/api/predict", &body).json();
    assert_eq!(v["label"], 3);
    assert_eq!(v["model"], "mnist@1");
}

#[test]
fn predict_model_query_picks_the_model() {
    let f = Fixture::new();
    let png = drawn_digit_png(&first_of(2), 140);
    for (query, model) in [
        ("", "mnist@1"),
        ("?model=mnist-int8@1", "mnist-int8@1"),
        ("?model=mnist-int8%401", "mnist-int8@1"),
        ("?model=mnist-int8", "mnist-int8@1"),
        ("?model=mnist@default", "mnist@1"),
    ] {
        let a = f.request(
            "POST",
            &format!("/api/predict{query}"),
            Some("image/png"),
            &png,
        );
        assert_eq!(
            a.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let v = a.json();
        assert_eq!(v["model"], model, "{query}");
        assert_eq!(v["label"], 2, "{query}");
    }
    let msg = f
        .request("POST", "/api/predict?model=nope", Some("image/png"), &png)
        .expect_error(404);
    assert!(msg.contains("nope"), "{msg}");
    f.request(
        "POST",
        "/api/predict?model=bad%20name!",
        Some("image/png"),
        &png,
    )
    .expect_error(400);
}

#[test]
fn predict_errors_have_their_status() {
    let f = Fixture::new();
    let png = drawn_digit_png(&first_of(1), 140);
    let predict = |ct: Option<&str>, body: &[u8]| f.request("POST", "/api/predict", ct, body);
    let json = Some("application/json");

    // 400: malformed JSON, wrong pixel count, NaN / inf / out of range, malformed PNG,
    // missing body, no ink, bad image fields.
    predict(json, b"{\"pixels\": [0.1,").expect_error(400);
    predict(json, b"{\"pixels\": [NaN]}").expect_error(400);
    predict(json, b"{\"pixels\": [1e999]}").expect_error(400);
    let msg = predict(
        json,
        json!({ "pixels": vec![0.5; 783] }).to_string().as_bytes(),
    )
    .expect_error(400);
    assert!(msg.contains("784"), "{msg}");
    let mut pixels = vec![0.0; 784];
    pixels[3] = 2.0;
    predict(json, json!({ "pixels": pixels }).to_string().as_bytes()).expect_error(400);
    predict(
        json,
        json!({ "pixels": vec![0.0; 784] }).to_string().as_bytes(),
    )
    .expect_error(400);
    predict(json, b"{\"other\": 1}").expect_error(400);
    let bad_image = json!({ "image": { "width": 2, "height": 2, "data": [0, 1, 2] } });
    predict(json, bad_image.to_string().as_bytes()).expect_error(400);
    let bad_byte = json!({ "image": { "width": 1, "height": 1, "data": [256] } });
    predict(json, bad_byte.to_string().as_bytes()).expect_error(400);
    let msg = predict(Some("image/png"), b"not a png").expect_error(400);
    assert!(msg.contains("PNG"), "{msg}");
    predict(Some("image/png"), &png[..png.len() / 2]).expect_error(400);
    predict(Some("image/png"), b"").expect_error(400);
    predict(json, b"").expect_error(400);

    // 413: an image over 4096 px on a side (PNG header or JSON fields).
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&5000u32.to_be_bytes()); // IHDR width
    let msg = predict(Some("image/png"), &huge).expect_error(413);
    assert!(msg.contains("4096"), "{msg}");
    let wide = json!({ "image": { "width": 5000, "height": 1, "data": [] } });
    predict(json, wide.to_string().as_bytes()).expect_error(413);

    // 415: a content type that is neither PNG nor JSON, or none.
    predict(Some("text/plain"), b"7").expect_error(415);
    predict(None, &png).expect_error(415);
    // Parameters of the media type are fine.
    assert_eq!(
        predict(Some("application/json; charset=utf-8"), b"{\"pixels\":[]}").status,
        400
    );

    // 405 with Allow, 404 for an unknown route.
    let a = f.get("/api/predict");
    a.expect_error(405);
    assert_eq!(a.header("Allow"), Some("POST"));
    f.get("/api/nothing").expect_error(404);
    f.request("POST", "/api/models", json, b"{}")
        .expect_error(405);
}

#[test]
fn body_over_the_limit_is_413() {
    let f = Fixture::with_options(Options {
        max_body: 4000,
        ..Options::default()
    });
    // Refused from Content-Length alone, before the body is sent.
    let mut c = f.connect();
    c.send_raw(
        b"POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 100000000\r\n\r\n",
    );
    c.read_answer().expect_error(413);
    // A body really sent over the limit.
    let big = vec![b' '; 5000];
    f.request("POST", "/api/predict", Some("application/json"), &big)
        .expect_error(413);
    f.request("POST", "/invocations", Some("application/json"), &big)
        .expect_error(413);
    // Under the limit still works on the same server.
    let png = drawn_digit_png(&first_of(0), 140);
    assert!(png.len() < 4000, "{}", png.len());
    assert_eq!(
        f.request("POST", "/api/predict", Some("image/png"), &png)
            .status,
        200
    );
}

#[test]
fn models_and_runs_are_listed() {
    let f = Fixture::new();
    let models = f.get("/api/models");
    assert_eq!(models.status, 200);
    let text = models.json().to_string();
    assert!(
        text.contains("mnist-int8") && text.contains("default"),
        "{text}"
    );

    let runs = f.get("/api/runs").json();
    assert_eq!(runs, json!([]));
    // A real training session writes a run record and registers tiny@1.
    let id = train_tiny_model(&f.dir.join("models"), &f.dir.join("runs"));
    assert_eq!(id, "tiny@1");
    let runs = f.get("/api/runs").json();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run_id = runs[0]["run_id"].as_str().expect("run id").to_owned();
    let run = f.get(&format!("/api/runs/{run_id}"));
    assert_eq!(run.status, 200);
    assert!(run.json().to_string().contains("tiny@1"));
    f.get("/api/runs/20990101-000000-nope").expect_error(404);
    assert!(f.get("/api/models").json().to_string().contains("tiny"));
    // The new model is predicted with at once.
    let png = drawn_digit_png(&first_of(1), 140);
    let v = f
        .request("POST", "/api/predict?model=tiny", Some("image/png"), &png)
        .json();
    assert_eq!(v["model"], "tiny@1");
}

/// The rows of five test images as MLflow clients send them (0..1 floats), and their labels.
fn mlflow_rows() -> (Vec<Vec<f64>>, Vec<u64>) {
    let data = t10k();
    let rows = data.images[..5]
        .iter()
        .map(|img| img.iter().map(|&b| f64::from(b) / 255.0).collect())
        .collect();
    (
        rows,
        data.labels[..5].iter().map(|&l| u64::from(l)).collect(),
    )
}

#[test]
fn invocations_answers_the_four_mlflow_formats() {
    let f = Fixture::new();
    let (rows, labels) = mlflow_rows();
    let expected = json!({ "predictions": labels });
    let columns: Vec<String> = (0..784).map(|i| i.to_string()).collect();
    // What `mlflow.pyfunc` scoring clients send: pandas `to_json(orient="split")` wrapped in
    // `dataframe_split` (with `index`), `to_dict(orient="records")`, and tensor inputs.
    let split = json!({ "dataframe_split": {
        "columns": columns, "index": [0, 1, 2, 3, 4], "data": rows } });
    let records: Vec<Value> = rows
        .iter()
        .map(|row| {
            let map: serde_json::Map<String, Value> = row
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("pixel{i}"), json!(v)))
                .collect();
            Value::Object(map)
        })
        .collect();
    let records = json!({ "dataframe_records": records });
    let instances = json!({ "instances": rows });
    let inputs = json!({ "inputs": rows });
    for body in [split, records, instances, inputs] {
        let a = f.post_json("/invocations", &body);
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.json(), expected);
    }
    // Errors.
    f.post_json("/invocations", &json!({ "instances": [vec![0.5; 10]] }))
        .expect_error(400);
    f.post_json("/invocations", &json!({ "nothing": [] }))
        .expect_error(400);
    f.post_json(
        "/invocations",
        &json!({ "dataframe_split": { "columns": ["a"], "data": [[0.1]] } }),
    )
    .expect_error(400);
    f.request("POST", "/invocations", Some("text/csv"), b"1,2\n")
        .expect_error(415);
    f.request("POST", "/invocations", Some("application/json"), b"[")
        .expect_error(400);
    f.get("/invocations").expect_error(405);
}

#[test]
fn ping_health_and_version() {
    let f = Fixture::new();
    for path in ["/ping", "/health"] {
        let a = f.get(path);
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.body, b"\n", "{path}");
    }
    let v = f.get("/version");
    assert_eq!(v.status, 200);
    assert_eq!(
        String::from_utf8(v.body).unwrap(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn keep_alive_answers_two_requests_on_one_connection() {
    let f = Fixture::new();
    let mut c = f.connect();
    let png = drawn_digit_png(&first_of(4), 140);
    let a = c.request("POST", "/api/predict", Some("image/png"), &png);
    assert_eq!(a.json()["label"], 4);
    // An error does not close the connection either.
    c.request("GET", "/nope", None, b"").expect_error(404);
    assert_eq!(c.request("GET", "/ping", None, b"").status, 200);
}

#[test]
fn a_slow_client_does_not_block_the_others() {
    let f = Fixture::new();
    // Announces a body and never sends it: holds one worker.
    let mut slow = f.connect();
    slow.send_raw(b"POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n");
    std::thread::sleep(std::time::Duration::from_millis(200));
    for _ in 0..5 {
        assert_eq!(f.get("/ping").status, 200);
    }
    drop(slow);
}

#[test]
fn a_stopped_server_no_longer_answers() {
    let f = Fixture::new();
    let addr = f.server.addr();
    assert_eq!(f.get("/health").status, 200);
    f.server.stop();
    // tiny_http closes its listener from its accept thread, shortly after the last handle.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listening on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
