//! The HTTP API over a real socket, against a real server on `127.0.0.1:0`.
//!
//! The client is a small hand-written HTTP/1.1 helper (no dependency): it writes the request
//! bytes as given and reads a `Content-Length` response, so tests can also send what a
//! well-behaved client library never would (a lying `Content-Length`, no content type).
// A test reads as one script of steps; the 80-line limit (clippy.toml) is for the code.
#![allow(clippy::too_many_lines)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

mod adapt;
mod limits;
mod tune;

use pismo_http::{Options, Server};
use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
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
        // The first two shipped models, `default` on the f32 one: the API's answers, not the
        // shipped default, are under test here.
        for file in ["mnist.v1.pismo", "mnist-int8.v1.pismo"] {
            std::fs::copy(
                workspace_root().join("models").join(file),
                models.join(file),
            )
            .unwrap();
        }
        std::fs::write(models.join("aliases.json"), r#"{"default":"mnist@1"}"#).unwrap();
        let server = Server::start(
            "127.0.0.1:0",
            Registry::open(models),
            Runs::open(dir.join("runs")),
            options,
        )
        .unwrap();
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

    fn from_stream(stream: TcpStream) -> Self {
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
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
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

    /// A chunked body (event streams are sent that way).
    fn read_chunks(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim_end(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            let start = body.len();
            body.resize(start + size + 2, 0);
            self.reader.read_exact(&mut body[start..]).unwrap();
            assert_eq!(&body[start + size..], b"\r\n", "chunk not ended by CRLF");
            body.truncate(start + size);
            if size == 0 {
                return body;
            }
        }
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
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Transfer-Encoding") && v.eq_ignore_ascii_case("chunked")
        });
        let body = if chunked {
            self.read_chunks()
        } else {
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).unwrap();
            body
        };
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
        b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: 100000000\r\n\r\n",
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

/// Issue 28: the page says a linked model "was deleted" only when it was; the registry's
/// deleted versions are listed for it.
#[test]
fn deleted_versions_are_listed() {
    let f = Fixture::new();
    assert_eq!(f.get("/api/models/deleted").json(), json!([]));
    let id = train_tiny_model(&f.dir.join("models"), &f.dir.join("runs"));
    let registry = Registry::open(f.dir.join("models"));
    registry.delete(&id.parse().unwrap()).unwrap();
    assert_eq!(f.get("/api/models/deleted").json(), json!(["tiny@1"]));
    assert!(!f.get("/api/models").json().to_string().contains("tiny"));
    f.request("POST", "/api/models/deleted", None, b"")
        .expect_error(405);
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

/// Issue 29, item 4: the columns of a data frame were ignored, so a 7 sent with its columns
/// in another order was scored as the scrambled image (a 4).
#[test]
fn issue_29_invocations_places_data_frame_columns_by_name() {
    let f = Fixture::new();
    let (rows, labels) = mlflow_rows();
    assert_eq!(labels[0], 7);
    let seven = &rows[0];
    // Columns backwards, and the numbers with them; pandas writes unnamed columns as numbers.
    let reversed: Vec<f64> = seven.iter().rev().copied().collect();
    for columns in [
        (0..784)
            .rev()
            .map(|i| json!(format!("pixel{i}")))
            .collect::<Vec<_>>(),
        (0..784).rev().map(|i| json!(i)).collect(),
    ] {
        let split = json!({ "dataframe_split": { "columns": columns, "data": [reversed] } });
        let a = f.post_json("/invocations", &split);
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.json(), json!({ "predictions": [7] }));
    }
    // Records carry their names with each value: any order is theirs.
    let record: serde_json::Map<String, Value> = (0..784)
        .rev()
        .map(|i| (format!("pixel{i}"), json!(seven[i])))
        .collect();
    let a = f.post_json("/invocations", &json!({ "dataframe_records": [record] }));
    assert_eq!(a.json(), json!({ "predictions": [7] }));
    // Unknown and missing columns are a 400 naming them.
    let mut names: Vec<String> = (0..784).map(|i| format!("pixel{i}")).collect();
    names[10] = "ink".to_owned();
    let split = json!({ "dataframe_split": { "columns": names, "data": [seven] } });
    let m = f.post_json("/invocations", &split).expect_error(400);
    assert!(m.contains("unknown column \"ink\""), "{m}");
    assert!(m.contains("missing column \"pixel10\""), "{m}");
    let mut record: serde_json::Map<String, Value> = (0..784)
        .map(|i| (format!("pixel{i}"), json!(seven[i])))
        .collect();
    record.remove("pixel5");
    record.remove("pixel6");
    record.insert("x".to_owned(), json!(0));
    let m = f
        .post_json("/invocations", &json!({ "dataframe_records": [record] }))
        .expect_error(400);
    assert!(m.contains("unknown column \"x\""), "{m}");
    assert!(m.contains("missing columns \"pixel5\", \"pixel6\""), "{m}");
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
    // Announces a body and never sends it: holds its own connection thread until the body
    // deadline.
    let mut slow = f.connect();
    slow.send_raw(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n");
    std::thread::sleep(std::time::Duration::from_millis(200));
    for _ in 0..5 {
        assert_eq!(f.get("/ping").status, 200);
    }
    drop(slow);
}

#[test]
fn more_stalled_clients_than_workers_do_not_block_the_others() {
    let f = Fixture::new();
    let stalled: Vec<Client> = (0..10)
        .map(|_| {
            let mut c = f.connect();
            c.send_raw(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n");
            c
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let png = drawn_digit_png(&first_of(4), 140);
    for _ in 0..5 {
        let a = f.request("POST", "/api/predict", Some("image/png"), &png);
        assert_eq!(a.json()["label"], 4);
    }
    drop(stalled);
}

#[test]
fn a_stopped_server_no_longer_answers() {
    let f = Fixture::new();
    let addr = f.server.addr();
    assert_eq!(f.get("/health").status, 200);
    f.server.stop();
    // The accept thread drops the listener when it stops.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listening on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Training, events, aliases, token

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    id: u64,
    name: String,
    data: Value,
}

impl Client {
    /// `GET path` as an event stream: the status and, for a 200, every event until the
    /// server ends the stream (it ends after `done`).
    fn events(&mut self, path: &str, last_event_id: Option<u64>) -> (u16, Vec<Sse>) {
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        self.send_raw(head.as_bytes());
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut chunked = false;
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            chunked |= l == "transfer-encoding: chunked";
            if let Some(n) = l.strip_prefix("content-length:") {
                length = n.trim().parse().unwrap();
            }
            if status == 200 && l.starts_with("content-type:") {
                assert!(l.contains("text/event-stream"), "{l}");
            }
        }
        if status != 200 {
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body).unwrap();
            return (status, Vec::new());
        }
        assert!(chunked, "an event stream is sent chunked");
        let mut text = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            text.push_str(std::str::from_utf8(&chunk[..size]).unwrap());
        }
        let events = text
            .split("\n\n")
            .filter_map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(str::to_owned))
                };
                Some(Sse {
                    id: field("id: ")?.parse().unwrap(),
                    name: field("event: ")?,
                    data: serde_json::from_str(&field("data: ")?).unwrap(),
                })
            })
            .collect();
        (status, events)
    }
}

impl Fixture {
    fn with_mnist() -> Option<Self> {
        let data_dir = pismo_tests::full_mnist()?;
        Some(Self::with_options(Options {
            data_dir,
            ..Options::default()
        }))
    }

    fn events(&self, path: &str, last_event_id: Option<u64>) -> (u16, Vec<Sse>) {
        self.connect().events(path, last_event_id)
    }

    fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        content_type: &str,
        body: &str,
    ) -> Answer {
        let mut c = self.connect();
        c.send_raw(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        c.read_answer()
    }
}

fn names(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn train_runs_in_the_background_streams_its_events_and_registers_the_model() {
    let Some(f) = Fixture::with_mnist() else {
        return;
    };
    let about = f.get("/api/train");
    assert_eq!(about.status, 200);
    let about = about.json();
    assert_eq!(about["data"]["available"], true);
    assert_eq!(about["defaults"]["hidden_size"], 128);
    assert_eq!(about["defaults"]["initial_lr"], 0.03);
    assert_eq!(about["max_concurrent"], 1);

    let body = json!({"name": "webtest", "hidden_size": 16, "epochs": 2, "val_size": 1000,
                      "aliases": ["fresh"]});
    let started = f.post_json("/api/train", &body);
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(
        started.header("Location"),
        Some(format!("/api/runs/{run_id}").as_str())
    );
    // The one slot is taken until the run ends.
    let busy = f.post_json("/api/train", &body);
    let msg = busy.expect_error(409);
    assert!(msg.contains("in progress"), "{msg}");
    assert_eq!(busy.json()["active"], json!([run_id]));

    let (status, events) = f.events(&format!("/api/runs/{run_id}/events"), None);
    assert_eq!(status, 200);
    let epochs: Vec<&Sse> = events.iter().filter(|e| e.name == "epoch").collect();
    assert_eq!(epochs.len(), 2, "{:?}", names(&events));
    assert_eq!(epochs[1].data["epoch"], 2);
    assert!(epochs[1].data["val_accuracy"].as_f64().unwrap() > 0.8);
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "log")
        .map(|e| e.data["line"].as_str().unwrap())
        .collect();
    assert!(lines[0].starts_with("training 784-16-10"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("epoch 2/2")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("registered webtest@1")),
        "{lines:?}"
    );
    let done = events.last().unwrap();
    assert_eq!(done.name, "done");
    assert_eq!(done.data["status"], "finished");
    assert_eq!(done.data["model"], "webtest@1");
    assert!(done.data["metrics"]["test_accuracy"].as_f64().unwrap() > 0.8);
    // Sequence numbers count up.
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));

    // The model is registered, with its alias, and predicts; the run is listed with its
    // final metrics; the log is the one the events streamed.
    let models = f.get("/api/models").json();
    let entry = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "webtest@1")
        .expect("webtest@1 listed");
    assert_eq!(entry["aliases"], json!(["fresh"]));
    let png = drawn_digit_png(&first_of(0), 140);
    let p = f.request("POST", "/api/predict?model=fresh", Some("image/png"), &png);
    assert_eq!(p.json()["model"], "webtest@1");
    let runs = f.get("/api/runs").json();
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "finished");
    assert_eq!(runs[0]["model"], "webtest@1");
    assert!(runs[0]["summary"]["val_accuracy"].as_f64().unwrap() > 0.8);
    let best = runs[0]["best"]["epoch"].as_u64().unwrap();
    assert_eq!(
        runs[0]["best"]["val_loss"].as_f64().unwrap() as f32,
        done.data["metrics"]["val_loss"].as_f64().unwrap() as f32,
        "the best epoch ({best}) is the one whose weights were kept"
    );
    let log = f.get(&format!("/api/runs/{run_id}/log"));
    let log = String::from_utf8(log.body).unwrap();
    assert_eq!(log.lines().collect::<Vec<_>>(), lines);
    // The slot is free again.
    assert!(f.get("/api/train").json()["active"]
        .as_array()
        .unwrap()
        .is_empty());

    // A late client gets the same events (a run in memory keeps only the newest of
    // consecutive progress events); Last-Event-ID skips what it has.
    let lasting = |events: &[Sse]| {
        events
            .iter()
            .filter(|e| e.name != "progress")
            .cloned()
            .collect::<Vec<_>>()
    };
    let (_, again) = f.events(&format!("/api/runs/{run_id}/events"), None);
    assert_eq!(lasting(&again), lasting(&events));
    let from = lasting(&events)[2].id;
    let (_, rest) = f.events(&format!("/api/runs/{run_id}/events"), Some(from));
    assert_eq!(
        lasting(&rest),
        lasting(&events)
            .into_iter()
            .filter(|e| e.id > from)
            .collect::<Vec<_>>()
    );

    // Another server on the same folders replays the run from disk: the same log lines
    // and epochs, then `done`.
    let other = Server::start(
        "127.0.0.1:0",
        Registry::open(f.dir.join("models")),
        Runs::open(f.dir.join("runs")),
        Options::default(),
    )
    .unwrap();
    let (_, replay) =
        Client::new(&other.addr().to_string()).events(&format!("/api/runs/{run_id}/events"), None);
    // (Batch progress is not on disk.)
    assert_eq!(names(&lasting(&replay)), names(&lasting(&events)));
    let replayed = replay
        .iter()
        .filter(|e| e.name == "epoch")
        .collect::<Vec<_>>();
    assert_eq!(replayed[1].data["val_loss"], epochs[1].data["val_loss"]);
    assert_eq!(replay.last().unwrap().data["model"], "webtest@1");
}

/// Issue 11, found by `bench/soak`: after a kill -9 and restart, a client resumes the run's
/// stream with a `Last-Event-ID` of the dead server's live numbering (which counts batch
/// progress events), past the whole replay from disk. It must still get `done`, or an
/// `EventSource` reconnects for ever without learning that the run ended.
#[test]
fn issue_11_a_resumed_stream_of_an_ended_run_still_ends_with_done() {
    let f = Fixture::new();
    let runs = Runs::open(f.dir.join("runs"));
    let mut run = runs
        .create("killed", &pismo_core::hyper::Hyper::DEFAULT, "test")
        .unwrap();
    run.log_line("training 784-128-10 on 50000 images");
    let run_id = run.id().to_owned();
    run.finish(
        pismo_storage::runs::Status::Failed,
        Some("the process died"),
    );
    let path = format!("/api/runs/{run_id}/events");
    let (status, all) = f.events(&path, None);
    assert_eq!(status, 200);
    assert_eq!(names(&all), ["log", "done"]);
    assert_eq!(all[1].id, 2);
    for after in [1, 2, 500] {
        let (status, resumed) = f.events(&path, Some(after));
        assert_eq!(status, 200);
        assert_eq!(names(&resumed), ["done"], "Last-Event-ID {after}");
        assert_eq!(resumed[0].data["status"], "failed");
        assert_eq!(
            resumed[0].id,
            (after + 1).max(2),
            "ids go on after the client's"
        );
    }
}

#[test]
fn a_run_can_be_stopped_and_keeps_its_best_weights() {
    let Some(f) = Fixture::with_mnist() else {
        return;
    };
    let started = f.post_json(
        "/api/train",
        &json!({"name": "long", "hidden_size": 16, "epochs": 500, "val_size": 1000}),
    );
    assert_eq!(started.status, 202);
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    // Stop once the first epoch is in.
    let mut c = f.connect();
    c.send_raw(
        format!("GET /api/runs/{run_id}/events HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    );
    let mut line = String::new();
    while !line.starts_with("event: epoch") {
        line.clear();
        c.reader.read_line(&mut line).unwrap();
    }
    let stop = f.request("POST", &format!("/api/runs/{run_id}/stop"), None, b"");
    assert_eq!(stop.status, 202);
    let (_, events) = f.events(&format!("/api/runs/{run_id}/events"), None);
    let done = events.last().unwrap();
    assert_eq!(done.data["status"], "stopped", "{:?}", names(&events));
    assert_eq!(done.data["model"], "long@1");
    let epochs = done.data["metrics"]["epochs_run"].as_u64().unwrap();
    assert!((1..500).contains(&epochs), "{epochs}");
    assert_eq!(
        f.get(&format!("/api/runs/{run_id}")).json()["status"],
        "stopped"
    );
    f.request("POST", &format!("/api/runs/{run_id}/stop"), None, b"")
        .expect_error(409);
}

#[test]
fn train_requests_are_checked() {
    // No MNIST needed: every request here is refused before training starts.
    let f = Fixture::with_options(Options {
        data_dir: workspace_root().join("no-such-folder"),
        ..Options::default()
    });
    let about = f.get("/api/train").json();
    assert_eq!(about["data"]["available"], false);
    assert!(about["data"]["error"]
        .as_str()
        .unwrap()
        .contains("pismo data fetch"));

    for (body, field) in [
        (json!({"dropout_rate": 1.0}), "dropout_rate"),
        (json!({"hidden_size": 100}), "hidden_size"),
        (json!({"epochs": 0}), "epochs"),
        (json!({"epochs": "many"}), "epochs"),
        (json!({"batch_size": 1.5}), "batch_size"),
        (json!({"learning_rate": -1}), "initial_lr"),
        (json!({"hiden_size": 64}), "hiden_size"),
        (json!({"name": "../x"}), "name"),
    ] {
        let a = f.post_json("/api/train", &body);
        let msg = a.expect_error(400);
        assert_eq!(a.json()["field"], field, "{body}: {msg}");
    }
    let msg = f
        .post_json("/api/train", &json!({"epochs": 1}))
        .expect_error(503);
    assert!(msg.contains("pismo data fetch"), "{msg}");
    f.request("POST", "/api/train", Some("text/plain"), b"{}")
        .expect_error(415);
    f.request("POST", "/api/train", Some("application/json"), b"[1")
        .expect_error(400);
    let put = f.request("PUT", "/api/train", Some("application/json"), b"{}");
    put.expect_error(405);
    assert_eq!(put.header("Allow"), Some("GET, POST"));

    // Unknown runs.
    assert_eq!(f.events("/api/runs/nope/events", None).0, 404);
    f.get("/api/runs/nope/log").expect_error(404);
    f.request("POST", "/api/runs/nope/stop", None, b"")
        .expect_error(404);
    f.get("/api/runs/bad%2Fid/log").expect_error(400);
    // An unknown model is a 404 whatever the body.
    f.request("POST", "/api/predict?model=nope", Some("text/plain"), b"x")
        .expect_error(404);
}

#[test]
fn aliases_are_set_and_removed_over_http() {
    let f = Fixture::new();
    let put = |alias: &str, body: &Value| {
        f.request(
            "PUT",
            &format!("/api/aliases/{alias}"),
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    };
    let a = put("best", &json!({"model": "mnist-int8@1"}));
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({"alias": "best", "model": "mnist-int8@1"}));
    assert_eq!(
        f.get("/api/aliases").json(),
        json!({"best": "mnist-int8@1", "default": "mnist@1"})
    );
    let png = drawn_digit_png(&first_of(3), 140);
    let p = f.request("POST", "/api/predict?model=best", Some("image/png"), &png);
    assert_eq!(p.json()["model"], "mnist-int8@1");

    put("best", &json!({"model": "mnist@7"})).expect_error(404);
    put("best", &json!({"modle": "mnist@1"})).expect_error(400);
    put("42", &json!({"model": "mnist@1"})).expect_error(400);
    f.request("PUT", "/api/aliases/best", Some("text/plain"), b"mnist@1")
        .expect_error(415);
    let d = f.request("DELETE", "/api/aliases/best", None, b"");
    assert_eq!(d.json(), json!({"alias": "best", "model": "mnist-int8@1"}));
    f.request("DELETE", "/api/aliases/best", None, b"")
        .expect_error(404);
    f.request("POST", "/api/aliases/best", None, b"")
        .expect_error(405);
}

#[test]
fn a_token_guards_training_and_registry_changes() {
    let f = Fixture::with_options(Options {
        token: Some("s3cret".to_owned()),
        data_dir: workspace_root().join("no-such-folder"),
        ..Options::default()
    });
    assert_eq!(f.get("/api/train").json()["token_required"], true);
    let body = r#"{"model":"mnist@1"}"#;
    let json = "application/json";
    let m = f
        .request_with("PUT", "/api/aliases/x", "", json, body)
        .expect_error(401);
    assert!(m.contains("token"), "{m}");
    f.request_with(
        "PUT",
        "/api/aliases/x",
        "Authorization: Bearer nope\r\n",
        json,
        body,
    )
    .expect_error(403);
    f.request_with("POST", "/api/train", "", json, "{}")
        .expect_error(401);
    f.request_with("POST", "/api/runs/x/stop", "", json, "")
        .expect_error(401);
    f.request_with("DELETE", "/api/aliases/default", "", json, "")
        .expect_error(401);
    let ok = f.request_with(
        "PUT",
        "/api/aliases/x",
        "Authorization: Bearer s3cret\r\n",
        json,
        body,
    );
    assert_eq!(ok.status, 200);
    // With the token, training gets as far as the missing data.
    f.request_with(
        "POST",
        "/api/train",
        "Authorization: Bearer s3cret\r\n",
        json,
        "{}",
    )
    .expect_error(503);
    // A browser on another site is refused even with the token; pismo's own page is not.
    let from = |origin: &str| format!("Origin: {origin}\r\nAuthorization: Bearer s3cret\r\n");
    f.request_with(
        "PUT",
        "/api/aliases/x",
        &from("http://evil.example"),
        json,
        body,
    )
    .expect_error(403);
    let mut c = f.connect();
    c.send_raw(
        format!(
            "PUT /api/aliases/x HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len(),
            addr = f.server.addr()
        )
        .as_bytes(),
    );
    assert_eq!(c.read_answer().status, 200);
    // Reading and predicting need no token.
    assert_eq!(f.get("/api/models").status, 200);
    let png = drawn_digit_png(&first_of(5), 140);
    assert_eq!(
        f.request("POST", "/api/predict", Some("image/png"), &png)
            .status,
        200
    );

    // A non-loopback address without a token does not start.
    let e = Server::start(
        "0.0.0.0:0",
        Registry::open(f.dir.join("models")),
        Runs::open(f.dir.join("r2")),
        Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("token"), "{e}");
}

#[test]
fn the_page_and_its_files_are_served() {
    let f = Fixture::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let a = f.get(path);
        assert_eq!(a.status, 200, "{path}");
        assert!(
            a.header("Content-Type").unwrap().starts_with(kind),
            "{path}"
        );
        assert!(!a.body.is_empty());
    }
    let page = String::from_utf8(f.get("/").body).unwrap();
    assert!(page.contains("app.js") && page.contains("app.css"));
    // Offline: nothing is loaded from another host. (The SVG namespace is a name, not an
    // address: the page's charts are SVG elements it creates in that namespace.)
    for path in ["/", "/app.js", "/app.css"] {
        let text = String::from_utf8(f.get(path).body)
            .unwrap()
            .replace("'http://www.w3.org/2000/svg'", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path}"
        );
    }
}

#[test]
fn a_burst_of_new_connections_is_served() {
    let f = Fixture::new();
    let addr = f.server.addr().to_string();
    let mut stuck = 0;
    // Idle keep-alive connections stay open (as a browser keeps them) while new ones arrive
    // in bursts (as a browser loading a page opens them).
    let mut open: Vec<TcpStream> = Vec::new();
    for _round in 0..20 {
        let mut conns: Vec<TcpStream> =
            (0..6).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        for c in &mut conns {
            c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            c.write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
        }
        for c in &mut conns {
            let mut buf = [0u8; 12];
            if c.read_exact(&mut buf).is_err() {
                stuck += 1;
            }
        }
        open.extend(conns);
    }
    assert_eq!(stuck, 0, "connections never answered");
}

/// A drawing as `{"image":…}` grey bytes: MNIST digit `pixels` 5x on a white 200x200 canvas.
fn drawing_json(pixels: &[u8; 784]) -> Value {
    let (side, mut data) = (200usize, vec![255u8; 200 * 200]);
    for y in 0..140 {
        for x in 0..140 {
            data[(30 + y) * side + 20 + x] = 255 - pixels[(y / 5) * 28 + x / 5];
        }
    }
    json!({ "width": side, "height": side, "data": data })
}

#[test]
fn predict_says_whether_it_is_sure_and_names_the_candidates() {
    let f = Fixture::new();
    let seven = f
        .post_json(
            "/api/predict",
            &json!({ "image": drawing_json(&first_of(7)) }),
        )
        .json();
    assert_eq!(seven["sure"], true);
    assert_eq!(seven["candidates"], json!([7]));
    assert_eq!(seven["label"], 7);

    let (blend, [first, second]) = pismo_tests::ambiguous_blend();
    let pixels: Vec<f64> = blend.iter().map(|&b| f64::from(b) / 255.0).collect();
    let v = f
        .post_json("/api/predict", &json!({ "pixels": pixels }))
        .json();
    assert_eq!(v["sure"], false, "{v}");
    assert_eq!(v["candidates"], json!([first, second]));
    assert_eq!(v["label"], first);
    probabilities_sum_to_one(&v);
    // MLflow scoring keeps its answer unchanged: the labels only.
    let scored = f
        .post_json("/invocations", &json!({ "inputs": [pixels] }))
        .json();
    assert_eq!(scored, json!({ "predictions": [first] }));
}

#[test]
fn drawn_keeps_a_corrected_drawing_on_disk_and_counts_it() {
    let drawn = TempDir::new("drawn");
    let f = Fixture::with_options(Options {
        drawn_dir: drawn.join("drawn"),
        ..Options::default()
    });
    let empty = f.get("/api/drawn").json();
    assert_eq!(empty["total"], 0);
    assert_eq!(empty["counts"], json!([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));

    let image = drawing_json(&first_of(9));
    let saved = f.post_json("/api/drawn", &json!({ "label": 4, "image": image }));
    assert_eq!(
        saved.status,
        201,
        "{}",
        String::from_utf8_lossy(&saved.body)
    );
    let v = saved.json();
    assert_eq!(v["sample"]["label"], 4);
    assert_eq!(
        (v["sample"]["width"].clone(), v["sample"]["height"].clone()),
        (json!(200), json!(200))
    );
    assert!(v["sample"]["id"].as_str().unwrap().starts_with("4-"));
    assert_eq!(v["total"], 1);
    assert_eq!(v["counts"][4], 1);
    let again = f.post_json("/api/drawn", &json!({ "label": 4, "image": image }));
    assert_eq!(again.json()["total"], 2);
    assert_eq!(f.get("/api/drawn").json()["counts"][4], 2);

    // On disk: the drawing, and as its input exactly what /api/predict says the model saw.
    let store = pismo_digits::drawn::DrawnStore::open(drawn.join("drawn"));
    let data = store.load().unwrap();
    assert_eq!(data.labels, vec![4, 4]);
    let seen = f
        .post_json("/api/predict", &json!({ "image": image }))
        .json();
    let seen: Vec<u8> = seen["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() * 255.0).round() as u8)
        .collect();
    assert_eq!(data.images[0].to_vec(), seen);
    let samples = store.list().unwrap();
    let raw =
        pismo_digits::image::decode_png(&std::fs::read(&samples[0].drawing).unwrap()).unwrap();
    let sent: Vec<u8> = image["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(raw.data, sent);
}

#[test]
fn drawn_refuses_a_bad_label_or_image_with_the_field_and_keeps_nothing() {
    let drawn = TempDir::new("drawn");
    let f = Fixture::with_options(Options {
        drawn_dir: drawn.join("drawn"),
        ..Options::default()
    });
    let image = drawing_json(&first_of(2));
    let field_error = |body: Value, field: &str| {
        let a = f.post_json("/api/drawn", &body);
        let msg = a.expect_error(400);
        assert_eq!(a.json()["field"], field, "{msg}");
        msg
    };
    let m = field_error(json!({ "label": 10, "image": image }), "label");
    assert!(m.contains("bad label 10") && m.contains("0 to 9"), "{m}");
    field_error(json!({ "label": -1, "image": image }), "label");
    field_error(json!({ "label": "7", "image": image }), "label");
    field_error(json!({ "label": 2.5, "image": image }), "label");
    let m = field_error(json!({ "image": image }), "label");
    assert!(m.contains("missing `label`"), "{m}");
    let blank = json!({ "width": 50, "height": 50, "data": vec![255; 2500] });
    let m = field_error(json!({ "label": 2, "image": blank }), "image");
    assert!(m.contains("no ink"), "{m}");
    let short = json!({ "width": 50, "height": 50, "data": [0, 255] });
    field_error(json!({ "label": 2, "image": short }), "image");
    field_error(json!({ "label": 2 }), "image");
    f.request("POST", "/api/drawn", Some("image/png"), b"x")
        .expect_error(415);
    f.request("PUT", "/api/drawn", Some("application/json"), b"{}")
        .expect_error(405);
    assert!(
        !drawn.join("drawn").exists()
            || std::fs::read_dir(drawn.join("drawn")).unwrap().count() == 0
    );
}

#[test]
fn drawn_is_guarded_like_the_other_changes() {
    let drawn = TempDir::new("drawn");
    let f = Fixture::with_options(Options {
        drawn_dir: drawn.join("drawn"),
        token: Some("s3cret".to_owned()),
        ..Options::default()
    });
    let body = json!({ "label": 1, "image": drawing_json(&first_of(1)) }).to_string();
    let json = "application/json";
    f.request_with("POST", "/api/drawn", "", json, &body)
        .expect_error(401);
    f.request_with(
        "POST",
        "/api/drawn",
        "Authorization: Bearer nope\r\n",
        json,
        &body,
    )
    .expect_error(403);
    f.request_with(
        "POST",
        "/api/drawn",
        "Origin: http://evil.example\r\nAuthorization: Bearer s3cret\r\n",
        json,
        &body,
    )
    .expect_error(403);
    assert_eq!(
        f.get("/api/drawn").json()["total"],
        0,
        "reading needs no token"
    );
    let ok = f.request_with(
        "POST",
        "/api/drawn",
        "Authorization: Bearer s3cret\r\n",
        json,
        &body,
    );
    assert_eq!(ok.status, 201);
    assert_eq!(f.get("/api/drawn").json()["total"], 1);
}

/// Issue 29, item 5: a server with a token streams the events of a run without the host
/// folders its log lines name.
#[test]
fn issue_29_events_of_a_server_with_a_token_name_no_host_folder() {
    let f = Fixture::with_options(Options {
        token: Some("s3cret".to_owned()),
        ..Options::default()
    });
    let runs_dir = f.dir.join("runs");
    let runs = Runs::open(runs_dir.clone());
    let mut run = runs
        .create("old", &pismo_core::hyper::Hyper::default(), "mnist")
        .unwrap();
    run.log_line(&format!("wrote {}/x.jsonl", runs_dir.display()));
    let id = run.id().to_owned();
    run.finish(pismo_storage::runs::Status::Finished, None);
    let (status, events) = f.events(&format!("/api/runs/{id}/events"), None);
    assert_eq!(status, 200);
    let text: Vec<String> = events.iter().map(|e| e.data.to_string()).collect();
    let text = text.join("\n");
    assert!(text.contains("wrote <runs>/x.jsonl"), "{text}");
    assert!(
        !text.contains(&f.dir.path().display().to_string()),
        "{text}"
    );
}
