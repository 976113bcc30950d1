//! The Lua scripts of the broker, loaded once and called by SHA (EVALSHA, with EVAL on NOSCRIPT).
//! `lua/workflow.lua` (workflow progress) is prepended to the scripts that end a task.

use std::sync::LazyLock;

use redis::Script;

pub(crate) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/enqueue.lua")));
pub(crate) static FETCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/fetch.lua")));
pub(crate) static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/workflow.lua"),
        include_str!("lua/history.lua"),
        include_str!("lua/finish.lua")
    ))
});
pub(crate) static MAINTAIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/workflow.lua"),
        include_str!("lua/history.lua"),
        include_str!("lua/maintain.lua")
    ))
});
pub(crate) static ADMIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/workflow.lua"),
        include_str!("lua/admin.lua")
    ))
});
/// Starts a workflow (or adds a chunk of a group's members to it).
pub(crate) static WF_START: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/wf_start.lua")));
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/release.lua")));
pub(crate) static PURGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/purge.lua")));
pub(crate) static RENEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));
pub(crate) static LEASE_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/lease_acquire.lua")));
pub(crate) static LEASE_RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/lease_release.lua")));
pub(crate) static RESERVE_IN_WINDOW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/reserve_in_window.lua")));
pub(crate) static GIVE_BACK_EVENT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/give_back_event.lua")));

/// An `EVALSHA` of `script` with its keys; add args with `.arg(..)`, run it with [`run`] or in a
/// pipeline with [`query_pipe`].
pub(crate) fn evalsha(script: &Script, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}

/// Runs one EVALSHA; on NOSCRIPT (a fresh or flushed Redis) loads the scripts and tries once more.
pub(crate) async fn run<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    match cmd.query_async(conn).await {
        Err(e) if is_noscript(&e) => {
            load_all(conn).await?;
            cmd.query_async(conn).await
        }
        other => other,
    }
}

/// Runs a pipeline of EVALSHA calls, with the same NOSCRIPT handling as [`run`].
pub(crate) async fn query_pipe<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    match pipe.query_async(conn).await {
        Err(e) if is_noscript(&e) => {
            load_all(conn).await?;
            pipe.query_async(conn).await
        }
        other => other,
    }
}

/// Loads every script into Redis's script cache.
pub(crate) async fn load_all(conn: &mut impl redis::aio::ConnectionLike) -> redis::RedisResult<()> {
    for s in [
        &*ENQUEUE,
        &*FETCH,
        &*FINISH,
        &*MAINTAIN,
        &*ADMIN,
        &*RELEASE,
        &*RENEW,
        &*PURGE,
        &*LEASE_ACQUIRE,
        &*LEASE_RELEASE,
        &*RESERVE_IN_WINDOW,
        &*GIVE_BACK_EVENT,
        &*WF_START,
    ] {
        let _: String = s.prepare_invoke().load_async(conn).await?;
    }
    Ok(())
}
