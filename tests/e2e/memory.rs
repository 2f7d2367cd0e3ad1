//! Issue 29, item 1: what a request body really costs the server, measured on the real
//! binary over a real socket. For every route that takes a body and the worst body shape of
//! each kind (objects, nested arrays, long strings, many small numbers), a fresh
//! `pismo serve` gets one request of the route's largest body; the growth of its peak RSS
//! (`VmHWM` of `/proc/PID/status`, reset through `clear_refs` before the request) per byte
//! of body must stay within what the server charges for it: the body budget's byte per byte
//! it holds, plus the decoding budget's per-byte charge of the route
//! (`JSON_BYTES_PER_BODY_BYTE` for the routes that take images,
//! `SMALL_JSON_BYTES_PER_BODY_BYTE` for the others). A fixed allowance covers what any
//! request costs whatever its body (the connection's thread, its buffers). The table it
//! prints is the one in SECURITY.md and docs/ARCHITECTURE.md.

use std::fs;

use pismo_http::limits::{
    JSON_BYTES_PER_BODY_BYTE, MAX_BODY_BYTES, MAX_SMALL_BODY_BYTES, SMALL_JSON_BYTES_PER_BODY_BYTE,
};
use pismo_tests::{train_tiny_model, Pismo};

use crate::serve::request;

/// What any request may cost beyond its per-byte charge: its connection thread's stack and
/// buffers, the answer, allocator slack.
const FIXED_ALLOWANCE: u64 = 2 << 20;

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kb << 10
}

/// `open` + `item` repeated + `close`, as long as fits in `limit` bytes.
fn filled(open: &str, item: &str, sep: &str, close: &str, limit: usize) -> Vec<u8> {
    let room = limit - open.len() - close.len();
    let n = (room + sep.len()) / (item.len() + sep.len());
    let mut body = String::with_capacity(limit);
    body.push_str(open);
    for i in 0..n {
        if i > 0 {
            body.push_str(sep);
        }
        body.push_str(item);
    }
    body.push_str(close);
    body.into_bytes()
}

struct Case {
    method: &'static str,
    path: &'static str,
    shape: &'static str,
    body: Vec<u8>,
    /// Charged bytes per body byte: the body budget's 1 plus the decoding budget's charge.
    charged: u64,
}

fn cases() -> Vec<Case> {
    let big = MAX_BODY_BYTES;
    let small = MAX_SMALL_BODY_BYTES;
    let row = format!("[{}]", vec!["0"; 784].join(","));
    // The model's columns (`pixel0` …), in reverse order: placed by name.
    let columns = (0..784)
        .rev()
        .map(|i| format!("\"pixel{i}\""))
        .collect::<Vec<_>>();
    let record = format!(
        "{{{}}}",
        columns
            .iter()
            .map(|c| format!("{c}:0"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let image = |open: &str| {
        // A square image whose `data` fills the body: its top half blank ("0,", 2 bytes of
        // text a pixel), its bottom half ink ("255,", 4 bytes), so it is preprocessed.
        let side = (((big - 100) / 3) as f64).sqrt() as usize;
        let half = side * side / 2;
        let data = [vec!["0"; half], vec!["255"; side * side - half]]
            .concat()
            .join(",");
        format!("{open}{{\"width\":{side},\"height\":{side},\"data\":[{data}]}}}}").into_bytes()
    };
    let json = 1 + JSON_BYTES_PER_BODY_BYTE;
    let small_json = 1 + SMALL_JSON_BYTES_PER_BODY_BYTE;
    let mut cases = vec![];
    let mut add = |method, path, shape, body: Vec<u8>, charged| {
        cases.push(Case {
            method,
            path,
            shape,
            body,
            charged,
        })
    };
    let escaped = "\\u0061";
    for path in ["/api/predict", "/api/drawn"] {
        let objects = filled("{\"pixels\":[", "{\"\":0}", ",", "]}", big);
        add("POST", path, "objects", objects, json);
        let numbers = filled("{\"pixels\":[", "0", ",", "]}", big);
        add("POST", path, "many small numbers", numbers, json);
        let string = filled("{\"pixels\":\"", escaped, "", "\"}", big);
        add("POST", path, "long string", string, json);
        let open = if path == "/api/drawn" {
            "{\"label\":3,\"image\":"
        } else {
            "{\"image\":"
        };
        add("POST", path, "image data numbers", image(open), json);
    }
    let inv = "/invocations";
    add(
        "POST",
        inv,
        "objects",
        filled("{\"inputs\":[", "{\"\":0}", ",", "]}", big),
        json,
    );
    add(
        "POST",
        inv,
        "nested arrays (rows)",
        filled("{\"inputs\":[", &row, ",", "]}", big),
        json,
    );
    let split = format!(
        "{{\"dataframe_split\":{{\"columns\":[{}],\"data\":[",
        columns.join(",")
    );
    add(
        "POST",
        inv,
        "nested arrays (dataframe_split)",
        filled(&split, &row, ",", "]}}", big),
        json,
    );
    add(
        "POST",
        inv,
        "objects (dataframe_records)",
        filled("{\"dataframe_records\":[", &record, ",", "]}", big),
        json,
    );
    add(
        "POST",
        inv,
        "long string",
        filled("{\"inputs\":\"", escaped, "", "\"}", big),
        json,
    );
    add(
        "POST",
        inv,
        "many small numbers",
        filled("{\"inputs\":[", "0", ",", "]}", big),
        json,
    );
    for (method, path) in [
        ("PUT", "/api/aliases/x"),
        ("POST", "/api/train"),
        ("POST", "/api/tune"),
        ("POST", "/api/adapt"),
    ] {
        let objects = filled("{\"a\":[", "{\"\":0}", ",", "]}", small);
        add(method, path, "objects", objects, small_json);
        let nested = filled("{\"a\":[", "[0]", ",", "]}", small);
        add(method, path, "nested arrays", nested, small_json);
        let string = filled("{\"a\":\"", escaped, "", "\"}", small);
        add(method, path, "long string", string, small_json);
        let numbers = filled("{\"a\":[", "0", ",", "]}", small);
        add(method, path, "many small numbers", numbers, small_json);
    }
    cases
}

#[test]
fn issue_29_a_body_costs_the_server_no_more_than_it_is_charged() {
    let p = Pismo::new();
    assert_eq!(train_tiny_model(&p.registry(), &p.runs()), "tiny@1");
    let mut table = vec![
        "| route | shape | body bytes | answer | peak RSS growth, bytes per body byte | charged |"
            .to_owned(),
        "|---|---|---:|---|---:|---:|".to_owned(),
    ];
    let mut over = vec![];
    for case in cases() {
        // A fresh server for each case: memory a previous request freed and the allocator
        // kept would hide this one's growth.
        let server = p.serve("127.0.0.1:0", &[]);
        let pid = server.pid();
        fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
        let before = status_bytes(pid, "VmRSS:");
        let head = format!(
            "{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            case.method,
            case.path,
            case.body.len()
        );
        let answer = request(server.addr(), &head, &case.body);
        let status = answer.get(9..12).unwrap_or("?").to_owned();
        // The answer's status and the start of its error, if any, for the table.
        let error = answer
            .split("\"error\":\"")
            .nth(1)
            .map(|e| e.chars().take(48).collect::<String>())
            .unwrap_or_default();
        let peak = status_bytes(pid, "VmHWM:");
        drop(server);
        let growth = peak.saturating_sub(before);
        let len = case.body.len() as u64;
        let per_byte = growth as f64 / len as f64;
        table.push(format!(
            "| `{} {}` | {} | {len} | {status} {error} | {per_byte:.1} | {} |",
            case.method, case.path, case.shape, case.charged
        ));
        // Every case is refused or answered; none is a 5xx (a 503 would mean the budget
        // refused it and nothing was measured).
        assert!(
            !status.starts_with('5') && status != "?",
            "{} {} {}: {answer:.300}",
            case.method,
            case.path,
            case.shape
        );
        if growth > case.charged * len + FIXED_ALLOWANCE {
            over.push(format!(
                "{} {} {}: {growth} bytes of peak RSS for {len} bytes of body, charged {} a byte",
                case.method, case.path, case.shape, case.charged
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(over.is_empty(), "over the charge:\n{}", over.join("\n"));
}
