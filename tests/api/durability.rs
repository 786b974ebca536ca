//! Acknowledged means durable: the real binary is SIGKILLed right after a 2xx and
//! restarted on the same data directory.

use std::time::{Duration, Instant};

use challenge_server::config::Settings;
use serde_json::{json, Value};

use crate::helpers::*;

struct Crashable {
    data: tempfile::TempDir,
    logs: tempfile::TempDir,
    http: reqwest::Client,
    admin: String,
}

impl Crashable {
    fn new() -> Self {
        Crashable {
            data: tempfile::tempdir().unwrap(),
            logs: tempfile::tempdir().unwrap(),
            http: reqwest::Client::new(),
            admin: token(&Settings::development(), "acme", ALL_SCOPES),
        }
    }

    async fn start(&self) -> ServerProcess {
        ServerProcess::start(self.data.path(), self.logs.path(), &[]).await
    }

    async fn create(&self, server: &ServerProcess, body: Value) -> Value {
        let r = self
            .http
            .post(server.url("/api/v1/challenges"))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    async fn answer(&self, server: &ServerProcess, created: &Value) -> u16 {
        let id = created["id"].as_str().unwrap();
        let token = created["actors"][0]["answer_token"].as_str().unwrap();
        self.http
            .post(server.url(&format!("/api/v1/challenges/{id}/answer")))
            .bearer_auth(&self.admin)
            .json(&json!({"answer_token": token}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn read(&self, server: &ServerProcess, id: &str) -> (u16, Value) {
        let r = self
            .http
            .get(server.url(&format!("/api/v1/challenges/{id}")))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

#[tokio::test]
async fn acknowledged_answers_and_creates_survive_sigkill() {
    let env = Crashable::new();
    let mut server = env.start().await;
    let answered = env
        .create(
            &server,
            json!({"type": "token", "user_id": "u-1", "ttl_seconds": 600}),
        )
        .await;
    let open = env
        .create(
            &server,
            json!({"type": "token", "user_id": "u-2", "ttl_seconds": 600}),
        )
        .await;
    let short = env
        .create(
            &server,
            json!({"type": "token", "user_id": "u-3", "ttl_seconds": 1}),
        )
        .await;
    let short_created = Instant::now();
    assert_eq!(env.answer(&server, &answered).await, 200);
    server.kill(); // right after the 2xx: nothing else had a chance to flush

    // Let the short one's TTL run out while the server is down.
    tokio::time::sleep_until((short_created + Duration::from_millis(1100)).into()).await;
    let server = env.start().await;

    let (status, body) = env.read(&server, answered["id"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "verified");
    assert_eq!(body["answered_by"]["user_id"], "u-1");
    assert_eq!(
        env.answer(&server, &answered).await,
        409,
        "a used challenge never accepts again"
    );

    let (_, body) = env.read(&server, open["id"].as_str().unwrap()).await;
    assert_eq!(body["state"], "issued");
    assert_eq!(
        body["expires_at"], open["expires_at"],
        "the remaining TTL is kept"
    );
    assert_eq!(env.answer(&server, &open).await, 200);

    let (_, body) = env.read(&server, short["id"].as_str().unwrap()).await;
    assert_eq!(body["state"], "expired");
    assert_eq!(env.answer(&server, &short).await, 409);
}

#[tokio::test]
async fn every_acknowledged_create_survives_a_kill_under_load() {
    let env = std::sync::Arc::new(Crashable::new());
    let mut server = env.start().await;
    let base = server.base.clone();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let env = env.clone();
        let base = base.clone();
        let answered = answered.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..40 {
                let r = env
                    .http
                    .post(format!("{base}/api/v1/challenges"))
                    .bearer_auth(&env.admin)
                    .json(&json!({"type": "token", "user_id": format!("w{worker}-{i}"), "ttl_seconds": 600}))
                    .send()
                    .await;
                let created = match r {
                    Ok(r) if r.status() == 201 => r.json::<Value>().await.ok(),
                    _ => None,
                };
                // No whole 201 response: the server died mid-request, not acknowledged.
                let Some(created) = created else { break };
                acknowledged.push(created["id"].as_str().unwrap().to_string());
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            acknowledged
        }));
    }
    // Kill once some creates are acknowledged, while others are still in flight.
    eventually(Duration::from_secs(30), || async {
        (answered.load(std::sync::atomic::Ordering::SeqCst) >= 60).then_some(())
    })
    .await;
    server.kill();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(acknowledged.len() >= 60);
    let server = env.start().await;
    for id in &acknowledged {
        let (status, body) = env.read(&server, id).await;
        assert_eq!(status, 200, "acknowledged challenge {id} was lost");
        assert_eq!(body["state"], "issued");
    }
}

/// Log segments in the data directory: more than one means a checkpoint is running (a
/// closed segment waits for sled's flush before it is deleted).
fn log_segments(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("log")).map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .count()
    })
}

#[tokio::test]
async fn acknowledged_writes_survive_kills_in_the_middle_of_a_checkpoint() {
    // A checkpoint at every sync: under load one is nearly always running. Both ways
    // of syncing the log, one after the other on the same data.
    let every_sync = |round: usize| {
        [
            ("CHALLENGE_SERVER__STORAGE__CHECKPOINT_INTERVAL_MS", "0"),
            (
                "CHALLENGE_SERVER__STORAGE__FDATASYNC",
                if round % 2 == 1 { "true" } else { "false" },
            ),
        ]
    };
    let env = std::sync::Arc::new(Crashable::new());
    let mut created: Vec<String> = Vec::new();
    let mut verified: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut server =
            ServerProcess::start(env.data.path(), env.logs.path(), &every_sync(round)).await;
        // What earlier rounds acknowledged is all there.
        for id in &created {
            let (status, body) = env.read(&server, id).await;
            assert_eq!(status, 200, "acknowledged challenge {id} was lost");
            assert_eq!(body["state"], "issued", "{id}");
        }
        for id in &verified {
            let (status, body) = env.read(&server, id).await;
            assert_eq!(status, 200, "acknowledged challenge {id} was lost");
            assert_eq!(
                body["state"], "verified",
                "acknowledged answer of {id} was lost"
            );
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for worker in 0..6 {
            let (env, base, stop) = (env.clone(), server.base.clone(), stop.clone());
            let acknowledged = acknowledged.clone();
            tasks.push(tokio::spawn(async move {
                let (mut issued, mut answered) = (Vec::new(), Vec::new());
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    i += 1;
                    let r = env
                        .http
                        .post(format!("{base}/api/v1/challenges"))
                        .bearer_auth(&env.admin)
                        .json(&json!({"type": "token", "user_id": format!("r{round}-w{worker}-{i}"), "ttl_seconds": 600}))
                        .send()
                        .await;
                    let Some(challenge) = (match r {
                        Ok(r) if r.status() == 201 => r.json::<Value>().await.ok(),
                        _ => None,
                    }) else {
                        break;
                    };
                    let id = challenge["id"].as_str().unwrap().to_string();
                    acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i % 2 == 0 {
                        issued.push(id);
                        continue;
                    }
                    let token = challenge["actors"][0]["answer_token"].as_str().unwrap();
                    let r = env
                        .http
                        .post(format!("{base}/api/v1/challenges/{id}/answer"))
                        .bearer_auth(&env.admin)
                        .json(&json!({"answer_token": token}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => answered.push(id),
                        // Died mid-answer: the create was acknowledged, the answer was not.
                        _ => break,
                    }
                }
                (issued, answered)
            }));
        }
        let data = env.data.path().to_path_buf();
        eventually(Duration::from_secs(30), || {
            let (data, acknowledged) = (data.clone(), acknowledged.clone());
            async move {
                let busy = acknowledged.load(std::sync::atomic::Ordering::SeqCst) >= 40;
                (busy && log_segments(&data) >= 2).then_some(())
            }
        })
        .await;
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in tasks {
            let (issued, answered) = task.await.unwrap();
            created.extend(issued);
            verified.extend(answered);
        }
    }
    assert!(!created.is_empty() && !verified.is_empty());
    let server = ServerProcess::start(env.data.path(), env.logs.path(), &[]).await;
    for id in &verified {
        let (status, body) = env.read(&server, id).await;
        assert_eq!(status, 200, "acknowledged challenge {id} was lost");
        assert_eq!(
            body["state"], "verified",
            "acknowledged answer of {id} was lost"
        );
    }
    assert_eq!(
        log_segments(env.data.path()),
        1,
        "the replayed log was deleted"
    );
}

#[tokio::test]
async fn a_graceful_restart_keeps_everything_and_sigterm_exits_cleanly() {
    let env = Crashable::new();
    let mut server = env.start().await;
    let created = env
        .create(
            &server,
            json!({"type": "token", "user_id": "u-1", "ttl_seconds": 600}),
        )
        .await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "SIGTERM must exit cleanly: {exit:?}");
    let log = std::fs::read_to_string(&server.stderr_log).unwrap();
    assert!(log.contains("shutting down"), "{log}");
    let server = env.start().await;
    let (status, body) = env.read(&server, created["id"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "issued");
}

/// A small tmpfs of our own, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with the reason printed) where this machine does not let a test mount one.
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(SmallDisk { dir }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Takes every free byte, in a file of its own; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        for _ in 0..16 {
            let _ = file.write_all(&chunk[..4096]);
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_changes_and_a_restart_keeps_exactly_what_was_acknowledged() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let t = Crashable::new();
    let data = disk.path().join("data");
    let mut server = ServerProcess::start(&data, t.logs.path(), &[]).await;
    let body = json!({"type": "token", "user_id": "u-1", "ttl_seconds": 3600});
    let first = t.create(&server, body.clone()).await;
    let first_id = first["id"].as_str().unwrap().to_string();

    let filler = disk.fill();
    let mut acknowledged = vec![first_id.clone()];
    let mut refused = None;
    for _ in 0..50_000 {
        let r = t
            .http
            .post(server.url("/api/v1/challenges"))
            .bearer_auth(&t.admin)
            .json(
                &json!({"type": "token", "user_id": "u-2", "ttl_seconds": 3600,
                "details": {"message": "x".repeat(1000)},
                "hidden_details": {"pad": "y".repeat(3000)}}),
            )
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            201 => {
                let v: Value = r.json().await.unwrap();
                acknowledged.push(v["id"].as_str().unwrap().to_string());
            }
            _ => {
                refused = Some(error_code(r).await);
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some((503, "storage_unavailable".to_string())),
        "the full disk refused a create"
    );
    // The store now refuses every change, and the node says it is not ready.
    assert_eq!(t.answer(&server, &first).await, 503);
    let ready = t.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "storage_failed");
    // What was acknowledged is still readable, unchanged.
    let (status, view) = t.read(&server, &first_id).await;
    assert_eq!((status, view["state"].as_str()), (200, Some("issued")));

    server.kill();
    std::fs::remove_file(filler).unwrap();
    let server = ServerProcess::start(&data, t.logs.path(), &[]).await;
    for id in &acknowledged {
        let (status, view) = t.read(&server, id).await;
        assert_eq!(status, 200, "acknowledged {id} survived");
        assert_eq!(
            view["state"], "issued",
            "{id}: the refused answer left no trace"
        );
    }
    let mut listed = 0;
    let mut page_token: Option<String> = None;
    loop {
        let mut url = server.url("/api/v1/challenges?page_size=500");
        if let Some(p) = &page_token {
            url.push_str(&format!("&page_token={p}"));
        }
        let page: Value = t
            .http
            .get(url)
            .bearer_auth(&t.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed += page["challenges"].as_array().unwrap().len();
        match page["next_page_token"].as_str() {
            Some(p) => page_token = Some(p.to_string()),
            None => break,
        }
    }
    assert_eq!(
        listed,
        acknowledged.len(),
        "exactly the acknowledged challenges exist"
    );
    // And the node takes changes again.
    assert_eq!(t.answer(&server, &first).await, 200);
}
