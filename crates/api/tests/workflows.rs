//! `POST /api/workflows` and `GET /api/workflows/{id}` over real PostgreSQL and Redis: a started
//! workflow answers its ids and progress; a step that does not validate is a 400 naming the step and
//! the field, never a 500.

mod common;

use common::spawn_app;
use serde_json::json;

#[tokio::test]
async fn a_group_starts_and_shows_its_progress() -> anyhow::Result<()> {
    let app = spawn_app("wf_start").await?;
    let (status, body) = app
        .post(
            "/api/workflows",
            r#"{"group":[{"kind":"noop","args":{"i":0}},{"kind":"noop","args":{"i":1}}],
                "callback":{"kind":"noop","args":{"label":"x"}},"on_failure":"skip"}"#,
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let ids = body["task_ids"].as_array().cloned().unwrap_or_default();
    assert_eq!(ids.len(), 3);
    let wf = body["workflow_id"].as_str().unwrap_or_default().to_owned();
    let (status, rec) = app.get(&format!("/api/workflows/{wf}")).await?;
    assert_eq!(status, 200, "{rec}");
    assert_eq!(
        rec,
        json!({
            "id": wf,
            "state": "RUNNING",
            "steps": [{"task_id": ids[0], "state": "PENDING"}, {"task_id": ids[1], "state": "PENDING"}],
            "callback": {"task_id": ids[2], "state": "WAITING"},
        })
    );
    let (status, body) = app
        .post(
            "/api/workflows",
            r#"{"chain":[{"kind":"noop"},{"kind":"noop"}]}"#,
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let (_, rec) = app
        .get(&format!(
            "/api/workflows/{}",
            body["workflow_id"].as_str().unwrap_or_default()
        ))
        .await?;
    assert!(
        rec.get("callback").is_none(),
        "a chain has no callback: {rec}"
    );
    assert_eq!(rec["steps"][1]["state"], json!("WAITING"));
    Ok(())
}

#[tokio::test]
async fn invalid_workflows_are_400_naming_the_step_and_field() -> anyhow::Result<()> {
    let app = spawn_app("wf_bad").await?;
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"group":[{"kind":"noop"},{"kind":"sleep","args":{"ms":"x"}}]}"#,
            "invalid_args",
            "group[1].args.ms",
        ),
        (
            r#"{"group":[{"kind":"nope"}]}"#,
            "unknown_kind",
            "group[0].kind",
        ),
        (
            r#"{"chain":[{"kind":"noop"},{"kind":"noop","countdown":5}]}"#,
            "invalid_field",
            "chain[1].countdown",
        ),
        (
            r#"{"group":[{"kind":"noop"}],"callback":{"kind":"noop","queue":"otra"}}"#,
            "invalid_field",
            "callback.queue",
        ),
        (
            r#"{"group":[{"kind":"noop"}],"callback":{"kind":"noop","args":[1]}}"#,
            "invalid_field",
            "callback.args",
        ),
        (
            r#"{"group":[{"kind":"noop","idempotency_key":"k"}]}"#,
            "invalid_field",
            "group[0].idempotency_key",
        ),
        (r#"{"group":[]}"#, "invalid_workflow", "group"),
        (
            r#"{"chain":[{"kind":"noop"}],"callback":{"kind":"noop"}}"#,
            "invalid_workflow",
            "callback",
        ),
        (r#"{}"#, "invalid_workflow", "chain"),
    ];
    for (body, code, field) in cases {
        let (s, b) = app.post("/api/workflows", body).await?;
        assert_eq!(s, 400, "{body} -> {b}");
        assert_eq!(b["error"]["code"], json!(code), "{body} -> {b}");
        assert_eq!(b["error"]["field"], json!(field), "{body} -> {b}");
    }
    let (s, b) = app.post("/api/workflows", r#"{"group": 3}"#).await?;
    assert_eq!(s, 400, "{b}");
    let (s, b) = app.get("/api/workflows/nope").await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (400, json!("invalid_workflow_id"))
    );
    let (s, b) = app.get("/api/workflows/01JD0000000000000000000000").await?;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("not_found")));
    Ok(())
}
