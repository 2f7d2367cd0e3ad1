//! Every limit `pismo serve` puts on its clients, in one place.
//!
//! Most constants are the default of an [`crate::Options`] field of the same meaning;
//! [`MAX_HEADERS`], [`SEND_TIMEOUT`], [`MAX_STREAMS`], [`RETRY_AFTER_SECONDS`] and the linger
//! values are fixed. `SECURITY.md` ("Limits") lists the same values; change them together.
//!
//! What a client gets when it crosses one (always a JSON `{"error": …}` unless noted):
//!
//! | limit                         | answer                                              |
//! |-------------------------------|-----------------------------------------------------|
//! | [`MAX_HEAD_BYTES`], [`MAX_HEADERS`] | 431, then the connection is closed            |
//! | [`HEAD_TIMEOUT`], [`BODY_TIMEOUT`]  | 408, then the connection is closed            |
//! | [`IDLE_TIMEOUT`]              | the keep-alive connection is closed, no answer      |
//! | [`SEND_TIMEOUT`]              | the connection is closed                            |
//! | [`BODY_START_TIMEOUT`]        | 408, then the connection is closed                  |
//! | [`MAX_CONNECTIONS`], [`MAX_CONNECTIONS_PER_CLIENT`] | 503 + `Retry-After`, then closed |
//! | [`MAX_BODY_BYTES`], [`MAX_SMALL_BODY_BYTES`] | 413 before any of the body is read, then closed |
//! | [`BODY_BUDGET_BYTES`], [`BODY_BUDGET_PER_CLIENT`] | 503 + `Retry-After` as the body arrives, closed |
//! | [`IMAGE_BUDGET_BYTES`]        | 503 + `Retry-After` (413 if one image alone is over)|
//! | not HTTP/1.x                  | an HTTP/2 preface gets 505, other bytes 400, then closed; a TLS handshake is closed at once |

use std::time::Duration;

/// Largest request head (request line and headers, with their line ends): 16 KiB, as
/// common proxies allow. A head that is not complete within this many bytes gets 431.
pub const MAX_HEAD_BYTES: usize = 16 << 10;

/// Most header fields in one request; more get 431.
pub const MAX_HEADERS: usize = 64;

/// Largest request body: 8 MiB (a 4096x4096 PNG of a drawing is far smaller). A larger
/// `Content-Length` gets 413 at once; the body is not read.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// Largest body of a route that takes no image (training, studies, aliases, …): 64 KiB,
/// ten times a study's search space, the largest of them. A larger `Content-Length` gets 413
/// at once, as over [`MAX_BODY_BYTES`]; so does a larger chunked body once its chunks add
/// up to more. Only `POST /api/predict`, `POST /invocations` and `POST /api/drawn` take up
/// to [`MAX_BODY_BYTES`].
pub const MAX_SMALL_BODY_BYTES: usize = 64 << 10;

/// Time for a whole request head to arrive, from its first byte (or, on a new connection,
/// from the accept). Slower clients get 408.
///
/// This and the other timeouts are kept with socket read and write timeouts, which Linux
/// runs on its timer wheel: a timeout of seconds may fire up to 1/8 of it late (the wheel's
/// granularity grows with the timeout); how late, measured: bench/README.md, "Soak".
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Time for a whole request body to arrive, from the end of its head. Slower clients get
/// 408. (8 MiB in 30 s is 280 KB/s.)
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a keep-alive connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest a write to a client may block (a client that stops reading its answer, or an
/// event stream's reader gone quiet); the connection is closed after it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Most connections open at once, each served by a thread of its own (event streams
/// included). One more is answered 503 and closed at once. Stalled clients free their slot
/// after [`HEAD_TIMEOUT`] or [`BODY_TIMEOUT`]. Each connection takes two file descriptors
/// (the socket and the clone that lets the server end it on stop), so 256 stays well
/// inside the common `ulimit -n` of 1024.
pub const MAX_CONNECTIONS: usize = 256;

/// Most connections one client (a peer address, an IPv6 one by its /64) may have open at
/// once: a quarter of [`MAX_CONNECTIONS`], so three quarters stay for the others whatever one
/// client does. One more is answered 503 + `Retry-After` and closed at once.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = MAX_CONNECTIONS / 4;

/// Memory that images being decoded may take at once, in bytes: 128 MiB. A PNG costs
/// [`pismo_digits::image::png_decode_cost`] (5 bytes a pixel, so a 4096x4096 one, the
/// largest accepted, costs 80 MiB); a JSON body of `/api/predict`, `/invocations` or
/// `/api/drawn` costs [`JSON_BYTES_PER_BODY_BYTE`] a byte (so one of [`MAX_BODY_BYTES`]
/// costs half the budget), that of another route [`SMALL_JSON_BYTES_PER_BODY_BYTE`]. A
/// request that would go over the budget gets 503 + `Retry-After`; one that
/// alone is over it gets 413.
pub const IMAGE_BUDGET_BYTES: u64 = 128 << 20;

/// Request bodies held in memory at once, in bytes: 64 MiB (eight bodies of
/// [`MAX_BODY_BYTES`]; a drawing's PNG is a few KB). A body is counted as it arrives (before
/// each read, for what the read may bring: at most 8 KiB more than it holds), until its
/// request is routed; one that would go over gets 503 + `Retry-After` and the connection is
/// closed. Without it, [`MAX_CONNECTIONS`] slow uploads could hold 2 GiB; counted as it
/// arrives, a `Content-Length` that is never sent holds nothing.
pub const BODY_BUDGET_BYTES: u64 = 64 << 20;

/// Most of [`BODY_BUDGET_BYTES`] one client's bodies may hold at once: a quarter (16 MiB,
/// two bodies of [`MAX_BODY_BYTES`]). Over it: 503 + `Retry-After`, then closed.
pub const BODY_BUDGET_PER_CLIENT: u64 = BODY_BUDGET_BYTES / 4;

/// Time for a body's first bytes to arrive, from the end of its head (or from the
/// `100 Continue`): 5 s. A client that announces a body and sends nothing gets 408 then, not
/// after the whole [`BODY_TIMEOUT`].
pub const BODY_START_TIMEOUT: Duration = Duration::from_secs(5);

/// What parsing a JSON body of `/api/predict`, `/invocations` or `/api/drawn` is counted to
/// take per byte of body, in the decoding budget of [`IMAGE_BUDGET_BYTES`]: 8. Those bodies
/// are parsed straight into numbers (issue 29). The worst shape, `/invocations` rows of 784
/// zeros, stays under 8 + 1 charged (the body budget counts the body itself, one byte a
/// byte) with a margin; the measured growth of each shape: SECURITY.md, "Memory per body
/// byte" (`tests/e2e/memory.rs`), and why this was 16 before issue 29: docs/ARCHITECTURE.md.
pub const JSON_BYTES_PER_BODY_BYTE: u64 = 8;

/// What parsing the JSON body of a route that takes no image (an alias `PUT`, `POST
/// /api/train`, `/api/tune`, `/api/adapt`; at most [`MAX_SMALL_BODY_BYTES`]) into a
/// `serde_json::Value` is counted to take per byte of body, in the decoding budget of
/// [`IMAGE_BUDGET_BYTES`]: 128. The worst shape, `{"a":[{"":0},…]}` (a map node for each 7
/// bytes, and the connection's own fixed cost), stays under 128 + 1 charged with a small
/// margin (measured: SECURITY.md, "Memory per body byte"). A body of the limit is charged
/// 8 MiB, so 16 of them fit in the budget at once.
pub const SMALL_JSON_BYTES_PER_BODY_BYTE: u64 = 128;

/// `Retry-After` seconds in the 503s of [`MAX_CONNECTIONS`], [`BODY_BUDGET_BYTES`] and
/// [`IMAGE_BUDGET_BYTES`] (and their shares per client).
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Most trials a study started from the web may have (`POST /api/tune`); more are a 400.
pub const MAX_STUDY_TRIALS: u32 = 1000;

/// Longest time budget a study started from the web may have, in seconds (a week); longer
/// is a 400.
pub const MAX_STUDY_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// Most event streams (`GET /api/runs/{id}/events`, `GET /api/studies/{name}/events`) open
/// at once; more get 503.
pub const MAX_STREAMS: usize = 64;

/// After an error that closes the connection, the server reads (and drops) at most this
/// many more bytes, for at most [`LINGER`], before it closes: so the answer is not lost to
/// a reset caused by unread data, yet a large body is never drained.
pub const LINGER_BYTES: usize = 64 << 10;

/// See [`LINGER_BYTES`].
pub const LINGER: Duration = Duration::from_millis(500);
