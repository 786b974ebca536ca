//! First answer wins, exactly once, under contention.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_answers_from_different_actors_have_exactly_one_winner() {
    let server = Arc::new(TestServer::start_with(|s| s.limits.max_actors = 32).await);
    let actors: Vec<Value> = (0..24)
        .map(|i| json!({"user_id": format!("actor-{i}")}))
        .collect();
    for round in 0..10 {
        let created = server
            .create_ok(json!({"type": "token", "user_id": "u-1", "actors": actors}))
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        let mut tasks = Vec::new();
        for i in 0..24 {
            let server = server.clone();
            let id = id.clone();
            let token = created["actors"][i]["answer_token"]
                .as_str()
                .unwrap()
                .to_string();
            let actor_id = created["actors"][i]["id"].as_str().unwrap().to_string();
            // Half answer anonymously, half through a relaying service.
            tasks.push(tokio::spawn(async move {
                let response = if i % 2 == 0 {
                    server.answer_anonymously(&id, &token, true).await
                } else {
                    server
                        .post(
                            Some(&server.admin()),
                            &format!("/api/v1/challenges/{id}/answer"),
                            json!({"answer_token": token}),
                        )
                        .await
                };
                (
                    actor_id,
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (actor_id, status, body) = task.await.unwrap();
            match status {
                200 => winners.push(actor_id),
                400 => assert_eq!(body["error"]["code"], "answer_rejected", "round {round}"),
                409 => assert_eq!(body["error"]["code"], "already_answered", "round {round}"),
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let state = server.state_of(&id).await;
        assert_eq!(state["state"], "verified");
        assert_eq!(state["answered_by"]["actor_id"], winners[0].as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_racing_a_cancel_leaves_one_consistent_outcome() {
    let server = Arc::new(TestServer::start().await);
    for _ in 0..20 {
        let created = server
            .create_ok(json!({"type": "token", "user_id": "u-1"}))
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        let token = created["actors"][0]["answer_token"]
            .as_str()
            .unwrap()
            .to_string();
        let answer = {
            let (server, id) = (server.clone(), id.clone());
            tokio::spawn(async move {
                server
                    .answer_anonymously(&id, &token, true)
                    .await
                    .status()
                    .as_u16()
            })
        };
        let cancel = {
            let (server, id) = (server.clone(), id.clone());
            tokio::spawn(async move {
                server
                    .http
                    .delete(server.url(&format!("/api/v1/challenges/{id}")))
                    .bearer_auth(server.admin())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        };
        let (answered, cancelled) = (answer.await.unwrap(), cancel.await.unwrap());
        let state = server.state_of(&id).await;
        // Either order is fine; cancel may follow an answer (verified → cancelled), but an
        // answer never follows a cancel.
        assert_eq!(cancelled, 200);
        assert_eq!(state["state"], "cancelled");
        if answered == 200 {
            assert!(state["answered_by"].is_object());
        } else {
            assert_eq!(answered, 400);
            assert!(state["answered_by"].is_null());
        }
    }
}
