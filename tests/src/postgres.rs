//! A real, throwaway PostgreSQL cluster for the tests: [`PgCluster`].
//!
//! Debian's server binaries (`/usr/lib/postgresql/<N>/bin`, the highest `N` installed, or the
//! folder `$PISMO_PG_BIN` names) make a cluster in a temp folder with `initdb --auth=trust`,
//! and `postgres` serves it on 127.0.0.1 on a free port (fsync off: nothing here must survive
//! a crash), with its Unix socket in the same temp folder. PostgreSQL refuses to run as root,
//! so when the tests run as root the folder is given to the `postgres` system user (made by
//! Debian's package), else to `nobody`, and every PostgreSQL program runs as that user through
//! `setpriv`. SQL goes through `psql`, so this crate needs no PostgreSQL client library.
//!
//! Each test makes its own database ([`PgCluster::create_database`]). Dropping the cluster
//! (or [`PgCluster::stop`]) stops the server with `pg_ctl stop -m immediate` and removes the
//! folder. [`postgres_or_skip`] starts one or says `SKIPPED` (a failure with
//! `PISMO_REQUIRE_POSTGRES=1`, as `.ci/run` sets it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// How long the server may take to accept connections after it was started.
const STARTUP: Duration = Duration::from_secs(30);

/// How many free ports are tried when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// The server's stdout and stderr, in the cluster's folder.
const LOG_FILE: &str = "server.log";

/// The environment variable naming a folder of PostgreSQL binaries (`initdb`, `pg_ctl`,
/// `postgres`, `psql`, `createdb`, `pg_isready`) to use instead of Debian's.
pub const BIN_VAR: &str = "PISMO_PG_BIN";

/// The environment variable that turns a cluster that cannot start into a failure.
pub const REQUIRE_VAR: &str = "PISMO_REQUIRE_POSTGRES";

/// A running PostgreSQL server on a cluster in a temp folder; stopped and removed on drop.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    /// The user the programs run as (`None`: this process's user).
    run_as: Option<RunAs>,
    /// The database superuser: the name of the user that ran `initdb`.
    superuser: String,
    port: u16,
    server: Child,
    stopped: bool,
    /// Holds `data/` (the cluster), `server.log` and the server's Unix socket. Declared last
    /// so that it is removed after [`Drop::drop`] has stopped the server.
    dir: TempDir,
}

impl PgCluster {
    /// Makes a cluster in a new temp folder and starts its server, waiting until it accepts
    /// connections. Errs with the reason when no PostgreSQL binaries are installed, there is
    /// no user to run them as, or the server cannot start (with its log).
    pub fn start() -> Result<PgCluster, String> {
        let bin = bin_dir()?;
        let dir = TempDir::new("pg");
        let run_as = if id(&["-u"])? == "0" {
            let user = RunAs::server_user()?;
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).map_err(|e| {
                format!("cannot give {} to {}: {e}", dir.path().display(), user.name)
            })?;
            Some(user)
        } else {
            None
        };
        let superuser = match &run_as {
            Some(user) => user.name.clone(),
            None => id(&["-un"])?,
        };
        initdb(&bin, run_as.as_ref(), &superuser, dir.path())?;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            if let Some(server) = serve(&bin, run_as.as_ref(), &superuser, dir.path(), port)? {
                return Ok(PgCluster {
                    bin,
                    run_as,
                    superuser,
                    port,
                    server,
                    stopped: false,
                    dir,
                });
            }
        }
        Err(format!(
            "the PostgreSQL server found each of {PORT_ATTEMPTS} free ports taken; its last \
             log:\n{}",
            server_log(dir.path())
        ))
    }

    /// `postgres://SUPERUSER@127.0.0.1:PORT/postgres`: the cluster's `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The URL of database `db` of this cluster, as the superuser.
    pub fn database_url(&self, db: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{db}", self.superuser, self.port)
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp folder holding the cluster (removed when the cluster is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path of PostgreSQL program `name` (e.g. `"psql"`) in the binaries this cluster
    /// runs; a client such as `psql URL` works from any user.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        server_log(self.dir.path())
    }

    /// Creates database `name` (with `createdb`) and returns its URL. Panics with
    /// `createdb`'s message if it cannot (e.g. the name is taken).
    pub fn create_database(&self, name: &str) -> String {
        let out = self
            .client("createdb")
            .arg("--")
            .arg(name)
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        self.database_url(name)
    }

    /// Runs the SQL `script` with `psql` on database `db` (stopping at the first error),
    /// with the psql variables `vars` set (`:'name'` quotes one as a literal), and returns
    /// its unaligned, tuples-only output. Panics with psql's message if it fails.
    pub fn psql(&self, db: &str, vars: &[(&str, &str)], script: &str) -> String {
        use std::io::Write;
        let mut cmd = self.client("psql");
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", db]);
        for (name, value) in vars {
            cmd.arg("-v").arg(format!("{name}={value}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run psql");
        // psql interpolates variables in a script it reads, not in `-c`. A psql that cannot
        // read it has exited: its status and message below say why.
        let _ = child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes());
        let out = child.wait_with_output().expect("wait for psql");
        assert!(
            out.status.success(),
            "psql on {db:?} failed ({}): {}\nscript:\n{script}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Terminates every backend connected to database `db` (its clients see the connection
    /// drop) and returns how many there were.
    pub fn kill_connections(&self, db: &str) -> usize {
        let out = self.psql(
            "postgres",
            &[("db", db)],
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = :'db' AND pid <> pg_backend_pid()) AS terminated;",
        );
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("psql answered {out:?} for a count: {e}"))
    }

    /// Stops the server (`pg_ctl stop -m immediate`) and removes the folder; panics if the
    /// server did not stop. Dropping the cluster does the same, without the panic.
    pub fn stop(mut self) {
        if let Err(reason) = self.shutdown() {
            panic!("{reason}");
        }
    }

    /// `pg_ctl stop -m immediate`, then waits for the server process; kills it if pg_ctl
    /// could not stop it.
    fn shutdown(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let stop = run(self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w"]));
        let failed = match stop {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "pg_ctl stop failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(reason) => Some(reason),
        };
        if failed.is_some() {
            let _ = self.server.kill();
        }
        let _ = self.server.wait();
        failed.map_or(Ok(()), Err)
    }

    /// A command running PostgreSQL program `name` as the cluster's user, in its folder.
    fn command(&self, name: &str) -> Command {
        let mut cmd = as_user(self.run_as.as_ref(), &self.bin.join(name), self.dir.path());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// [`PgCluster::command`] for a client program, connected over TCP as the superuser.
    fn client(&self, name: &str) -> Command {
        let mut cmd = self.command(name);
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", &self.superuser]);
        cmd
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// A cluster for test `test`, or `None` after a loud `SKIPPED` line on stderr when none can
/// start. With `PISMO_REQUIRE_POSTGRES=1` (CI) it panics with the reason instead.
pub fn postgres_or_skip(test: &str) -> Option<PgCluster> {
    let reason = match PgCluster::start() {
        Ok(cluster) => return Some(cluster),
        Err(reason) => reason,
    };
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{REQUIRE_VAR}=1 but {test} has no PostgreSQL cluster: {reason}"
    );
    eprintln!(
        "\n##########################################################################\n\
         SKIPPED {test}: {reason} (set {REQUIRE_VAR}=1 to make this a failure)\n\
         ##########################################################################\n"
    );
    None
}

/// Makes the cluster in `dir/data` with `initdb`, as `run_as`, with superuser `superuser`
/// and trust authentication.
fn initdb(bin: &Path, run_as: Option<&RunAs>, superuser: &str, dir: &Path) -> Result<(), String> {
    let out = run(as_user(run_as, &bin.join("initdb"), dir)
        .arg("--pgdata")
        .arg(dir.join("data"))
        .args(["--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"])
        .arg(format!("--username={superuser}")))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Starts `postgres` on the cluster in `dir/data`, as `run_as`, on 127.0.0.1:`port`, with its
/// output in [`LOG_FILE`], and polls `pg_isready` until it accepts connections. `None` when
/// it exited because another process took `port` first; an error (with the log) when it
/// exited for another reason or was not ready within [`STARTUP`].
fn serve(
    bin: &Path,
    run_as: Option<&RunAs>,
    superuser: &str,
    dir: &Path,
    port: u16,
) -> Result<Option<Child>, String> {
    let log = dir.join(LOG_FILE);
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut server = as_user(run_as, &bin.join("postgres"), dir)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-c", &format!("port={port}")])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "fsync=off"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run postgres: {e}"))?;
    let mut pg_isready = as_user(run_as, &bin.join("pg_isready"), dir);
    pg_isready
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", superuser, "-d", "postgres"])
        .stdin(Stdio::null());
    let started = Instant::now();
    let failed = loop {
        if let Ok(Some(status)) = server.try_wait() {
            let log = server_log(dir);
            if log.contains("could not bind") {
                return Ok(None);
            }
            return Err(format!(
                "the PostgreSQL server exited ({status}); its log:\n{log}"
            ));
        }
        match pg_isready.status() {
            Ok(ready) if ready.success() => return Ok(Some(server)),
            Ok(_) => {}
            Err(e) => break format!("cannot run pg_isready: {e}"),
        }
        if started.elapsed() >= STARTUP {
            break format!(
                "the PostgreSQL server did not accept connections on 127.0.0.1:{port} within \
                 {STARTUP:?}; its log:\n{}",
                server_log(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    Err(failed)
}

/// The folder of PostgreSQL's binaries: `$PISMO_PG_BIN`, else the highest version under
/// `/usr/lib/postgresql` that has `initdb`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(BIN_VAR).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(format!("{BIN_VAR}={} has no initdb", dir.display()))
        };
    }
    let root = Path::new("/usr/lib/postgresql");
    let not_installed = || {
        format!(
            "no PostgreSQL server binaries in {}/<version>/bin (Debian's package \
             `postgresql`), and {BIN_VAR} is not set",
            root.display()
        )
    };
    let entries = std::fs::read_dir(root).map_err(|_| not_installed())?;
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(not_installed)
}

/// The user PostgreSQL's programs run as when this process is root (PostgreSQL refuses
/// root).
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// `postgres` if it exists (Debian's package makes it), else `nobody`.
    fn server_user() -> Result<RunAs, String> {
        let number = |args: &[&str]| -> Result<u32, String> {
            let n = id(args)?;
            n.parse()
                .map_err(|e| format!("id {}: {n:?}: {e}", args.join(" ")))
        };
        for name in ["postgres", "nobody"] {
            if let Ok(uid) = number(&["-u", name]) {
                return Ok(RunAs {
                    name: name.to_owned(),
                    uid,
                    gid: number(&["-g", name])?,
                });
            }
        }
        Err(
            "running as root, and neither the user `postgres` nor `nobody` exists to run \
             PostgreSQL as (it refuses root)"
                .to_owned(),
        )
    }
}

/// The output of `id ARGS`, trimmed.
fn id(args: &[&str]) -> Result<String, String> {
    let out = run(Command::new("id").args(args))?;
    if !out.status.success() {
        return Err(format!(
            "id {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A command running `program` in folder `dir` as `user` (as this process's user when
/// `None`). `setpriv` executes the program itself with the user's ids and groups, so a
/// spawned server is the `Child` (no process in between that a kill would leave behind).
fn as_user(user: Option<&RunAs>, program: &Path, dir: &Path) -> Command {
    let mut cmd = match user {
        Some(user) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .args(["--init-groups", "--"])
                .arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.current_dir(dir);
    cmd
}

/// Runs `cmd` to the end with no input, capturing its output.
fn run(cmd: &mut Command) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))
}

/// The server's log in cluster folder `dir` ([`LOG_FILE`]), without its last newline.
fn server_log(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
    log.trim_end().to_owned()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}
