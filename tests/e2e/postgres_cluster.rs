//! The PostgreSQL harness of the store tests (`pismo_tests::postgres`) on a real cluster:
//! each database it creates answers `psql` at its URL and holds its own tables,
//! `kill_connections` drops the clients of one database and no other, and a stopped or
//! dropped cluster leaves no server process, no listening port and no folder behind.
//!
//! Needs Debian's `postgresql` package (or `PISMO_PG_BIN`); without it the tests print
//! SKIPPED, unless `PISMO_REQUIRE_POSTGRES=1` (CI sets it).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pismo_tests::postgres::{postgres_or_skip, PgCluster};

/// How long a client may take to notice what the test did to it (a hang guard, not a speed
/// check).
const PATIENCE: Duration = Duration::from_secs(20);

/// `psql URL -c SQL` run by this process (not through the harness), unaligned and
/// tuples-only; panics with psql's message if it fails.
fn psql_at(cluster: &PgCluster, url: &str, sql: &str) -> String {
    let out = Command::new(cluster.program("psql"))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg(url)
        .args(["-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A `psql URL` client that stays connected for a minute in `pg_sleep`.
fn held_connection(cluster: &PgCluster, url: &str) -> Child {
    Command::new(cluster.program("psql"))
        .args(["-X", "-A", "-t"])
        .arg(url)
        .args(["-c", "SELECT pg_sleep(60)"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start psql")
}

/// How many backends of database `db` are running `pg_sleep` (the held connections).
fn sleeping_backends(cluster: &PgCluster, db: &str) -> usize {
    cluster
        .psql(
            "postgres",
            &[("db", db)],
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = :'db' AND query LIKE '%pg_sleep(60)%';",
        )
        .trim()
        .parse()
        .expect("a count")
}

/// Waits until `done` holds, for at most [`PATIENCE`]; panics with `what` if it never does.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "{what} within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server's process id, from the first line of `data/postmaster.pid`.
fn postmaster_pid(dir: &Path) -> u32 {
    let pid_file = std::fs::read_to_string(dir.join("data").join("postmaster.pid"))
        .expect("a running cluster has data/postmaster.pid");
    pid_file
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in postmaster.pid: {pid_file:?}"))
}

/// Whether process `pid` is a live `postgres` (not gone, and not a zombie).
fn postgres_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (COMM) STATE …"
    let Some((comm, rest)) = stat.split_once(") ") else {
        return false;
    };
    comm.ends_with("(postgres") && !rest.starts_with('Z')
}

#[test]
fn each_database_answers_at_its_url_and_kill_connections_drops_only_its_clients() {
    let Some(cluster) = postgres_or_skip(
        "postgres_cluster::each_database_answers_at_its_url_and_kill_connections_drops_only_its_clients",
    ) else {
        return;
    };
    let dir = cluster.dir().to_path_buf();
    let port = cluster.port();
    let pid = postmaster_pid(&dir);
    assert!(postgres_running(pid), "the server (pid {pid}) is running");

    let url_a = cluster.create_database("harness_a");
    let url_b = cluster.create_database("harness_b");
    assert_ne!(url_a, url_b);
    for (url, db) in [(&url_a, "harness_a"), (&url_b, "harness_b")] {
        assert_eq!(psql_at(&cluster, url, "select 1"), "1");
        assert_eq!(psql_at(&cluster, url, "select current_database()"), db);
    }
    assert_eq!(
        psql_at(&cluster, &cluster.url(), "select current_database()"),
        "postgres"
    );

    // Each database holds its own tables.
    psql_at(
        &cluster,
        &url_a,
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)",
    );
    assert_eq!(
        cluster.psql("harness_a", &[], "SELECT x FROM kept;").trim(),
        "7"
    );
    assert_eq!(
        psql_at(&cluster, &url_b, "select to_regclass('kept') is null"),
        "t"
    );

    // A client of each database stays connected; killing A's drops A's client only.
    let mut client_a = held_connection(&cluster, &url_a);
    let mut client_b = held_connection(&cluster, &url_b);
    wait_for("both clients connected", || {
        sleeping_backends(&cluster, "harness_a") == 1
            && sleeping_backends(&cluster, "harness_b") == 1
    });
    assert_eq!(cluster.kill_connections("harness_a"), 1);
    wait_for("the client of harness_a lost its connection", || {
        client_a.try_wait().expect("poll psql").is_some()
    });
    let Output { status, stderr, .. } = client_a.wait_with_output().expect("psql's output");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        !status.success(),
        "psql on a killed connection failed: {status}"
    );
    assert!(
        stderr.contains("terminating connection due to administrator command"),
        "psql says why its connection ended: {stderr}"
    );
    assert!(
        client_b.try_wait().expect("poll psql").is_none(),
        "the client of harness_b is still connected"
    );
    assert_eq!(sleeping_backends(&cluster, "harness_b"), 1);
    assert_eq!(sleeping_backends(&cluster, "harness_a"), 0);
    // The lost connection changed nothing in the database.
    assert_eq!(psql_at(&cluster, &url_a, "SELECT x FROM kept"), "7");

    cluster.stop();
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(!postgres_running(pid), "the server (pid {pid}) has stopped");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on port {port} any more"
    );
    // psql's backend went with the server: the client sees its connection end.
    wait_for("the client of harness_b lost its connection", || {
        client_b.try_wait().expect("poll psql").is_some()
    });
}

#[test]
fn a_dropped_cluster_leaves_no_server_and_no_folder() {
    let Some(cluster) =
        postgres_or_skip("postgres_cluster::a_dropped_cluster_leaves_no_server_and_no_folder")
    else {
        return;
    };
    let dir = cluster.dir().to_path_buf();
    let pid = postmaster_pid(&dir);
    assert!(postgres_running(pid), "the server (pid {pid}) is running");
    assert_eq!(cluster.kill_connections("postgres"), 0);
    drop(cluster);
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(!postgres_running(pid), "the server (pid {pid}) has stopped");
}
