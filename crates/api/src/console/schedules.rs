//! *Programación*: beat's schedules with their next 5 runs in their own zone, last run and run
//! count; create and edit (cron or interval, zone, args, queue), enable or disable, delete (after
//! a confirmation) and run now. The same library calls as `/api/periodic-tasks`
//! (`faena_core::periodic`, `routes::periodic::enqueue_now`), so a form gets the api's messages.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use faena_core::periodic::{self, NewPeriodic, PeriodicPatch, PeriodicTask};
use maud::{html, Markup};

use crate::console::error::ConsoleError;
use crate::console::i18n::{Lang, Msg};
use crate::console::layout::{confirm, html_response, page, pretty, see_other, time, Tab};
use crate::console::session::{AdminAction, AdminViewer, Form, Viewer};
use crate::error::ApiError;
use crate::AppState;

/// How many next runs a schedule shows.
const NEXT_RUNS: usize = 5;

/// The list of schedules.
#[get("/programacion")]
pub async fn list(
    state: web::Data<AppState>,
    admin: AdminViewer,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    let l = v.lang;
    let rows = periodic::list(&mut *state.db_conn().await.map_err(|e| v.fail(e))?)
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    let now = Utc::now();
    let csrf = &v.session.csrf_token;
    let body = html! {
        p { a.button #new-schedule href="/console/programacion/nueva" { (Msg::NewSchedule.text(l)) } }
        section.card {
            @if rows.is_empty() { p.muted { (Msg::NoSchedules.text(l)) } } @else {
                table #schedules {
                    thead { tr {
                        th { (Msg::Name.text(l)) " · " (Msg::Kind.text(l)) } th { (Msg::Schedule.text(l)) }
                        th { (Msg::Enabled.text(l)) } th { (Msg::LastRun.text(l)) }
                        th.num { (Msg::RunCount.text(l)) } th { (Msg::NextRuns.text(l)) } th { (Msg::Actions.text(l)) }
                    } }
                    tbody {
                        @for t in &rows {
                            @let tz = t.tz().unwrap_or(v.tz);
                            @let registered = state.broker.catalog().get(&t.kind).is_some();
                            tr data-schedule=(t.name) {
                                td {
                                    a href={ "/console/programacion/" (t.name) } { (t.name) } br;
                                    span.muted { (t.kind) } @if !registered { " " span.badge.DEAD { (Msg::NoKind.text(l)) } }
                                }
                                td { code style="white-space:nowrap" { (schedule_text(t, l)) } br; span.muted { (t.timezone) } }
                                td { @if t.enabled { (Msg::Yes.text(l)) } @else { (Msg::No.text(l)) } }
                                td { (time(t.last_run_at, tz)) }
                                td.num { (t.total_run_count) }
                                td.next-runs {
                                    @for n in t.next_runs(now, NEXT_RUNS) { div { (time(Some(n), tz)) } }
                                }
                                td.actions {
                                    form.inline method="post" action={ "/console/programacion/" (t.name) "/ejecutar" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.run-now type="submit" { (Msg::RunNow.text(l)) }
                                    }
                                    " "
                                    form.inline method="post" action={ "/console/programacion/" (t.name) (if t.enabled { "/desactivar" } else { "/activar" }) } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.secondary type="submit" { (if t.enabled { Msg::Disable } else { Msg::Enable }.text(l)) }
                                    }
                                    " "
                                    form.inline method="post" action={ "/console/programacion/" (t.name) "/eliminar" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.danger type="submit" { (Msg::Delete.text(l)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page(&v.chrome(Tab::Schedules), Msg::TabSchedules.text(l), body),
    ))
}

fn schedule_text(t: &PeriodicTask, l: Lang) -> String {
    match (&t.cron, t.interval_secs) {
        (Some(c), _) => c.clone(),
        (None, Some(s)) => Msg::EverySecs.text(l).replace("{}", &s.to_string()),
        _ => "-".into(),
    }
}

/// What the form shows: a schedule's values, or what was typed.
#[derive(Debug, Default)]
struct Values {
    name: String,
    kind: String,
    args: String,
    queue: String,
    every: bool,
    cron: String,
    interval_secs: String,
    timezone: String,
    enabled: bool,
    description: String,
}

impl Values {
    fn of(t: &PeriodicTask) -> Self {
        Self {
            name: t.name.clone(),
            kind: t.kind.clone(),
            args: pretty(&t.args),
            queue: t.queue.clone().unwrap_or_default(),
            every: t.cron.is_none(),
            cron: t.cron.clone().unwrap_or_default(),
            interval_secs: t.interval_secs.map(|s| s.to_string()).unwrap_or_default(),
            timezone: t.timezone.clone(),
            enabled: t.enabled,
            description: t.description.clone(),
        }
    }

    fn from_form(f: &Form) -> Self {
        Self {
            name: f.get("name").unwrap_or("").to_owned(),
            kind: f.get("kind").unwrap_or("").to_owned(),
            args: f.raw("args").to_owned(),
            queue: f.get("queue").unwrap_or("").to_owned(),
            every: f.get("tipo") == Some("intervalo"),
            cron: f.get("cron").unwrap_or("").to_owned(),
            interval_secs: f.get("interval_secs").unwrap_or("").to_owned(),
            timezone: f.get("timezone").unwrap_or("").to_owned(),
            enabled: f.is_on("enabled"),
            description: f.get("description").unwrap_or("").to_owned(),
        }
    }
}

/// The fields both a new schedule and an edit send to the library, read from the form. A field
/// the console cannot even parse (args that are not JSON, an interval that is not a number) is
/// refused here with the field's name; everything else is the library's to judge.
struct Parsed {
    args: serde_json::Value,
    cron: Option<String>,
    interval_secs: Option<i64>,
}

fn parse(vals: &Values) -> Result<Parsed, ApiError> {
    let args = if vals.args.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&vals.args).map_err(|e| {
            ApiError::bad_request(
                "invalid_args",
                format!("`args` is not JSON: {e}; write an object such as {{\"ms\": 100}}"),
                Some("args".into()),
            )
        })?
    };
    let (cron, interval_secs) = if vals.every {
        let secs = vals.interval_secs.parse::<i64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_schedule",
                format!(
                    "`interval_secs` is not a whole number of seconds: {:?}",
                    vals.interval_secs
                ),
                Some("interval_secs".into()),
            )
        })?;
        (None, Some(secs))
    } else {
        (Some(vals.cron.clone()), None)
    };
    Ok(Parsed {
        args,
        cron,
        interval_secs,
    })
}

fn field_class(err: Option<&ApiError>, field: &str) -> &'static str {
    match err {
        Some(ApiError::BadRequest { field: Some(f), .. })
            if f == field || f.starts_with(&format!("{field}.")) =>
        {
            "field bad"
        }
        _ => "field",
    }
}

/// The create or edit form, with the api's error when the last submission was refused.
fn form_page(
    state: &AppState,
    v: &Viewer,
    editing: Option<&str>,
    vals: &Values,
    err: Option<&ApiError>,
    before: Option<Markup>,
) -> Markup {
    let l = v.lang;
    let action = editing.map_or_else(
        || "/console/programacion/nueva".to_owned(),
        |n| format!("/console/programacion/{n}"),
    );
    let title = if editing.is_some() {
        Msg::EditSchedule
    } else {
        Msg::NewSchedule
    };
    let body = html! {
        p { a href="/console/programacion" { "← " (Msg::TabSchedules.text(l)) } }
        @if let Some(b) = before { (b) }
        section.card {
            @if let Some(e) = err {
                div.form-error #form-error data-code=(e.code()) {
                    (Msg::ErrRefused.text(l))
                    pre { (e.to_string()) }
                }
            }
            form #schedule-form method="post" action=(action) {
                input type="hidden" name="csrf" value=(v.session.csrf_token);
                @if editing.is_none() {
                    div class=(field_class(err, "name")) {
                        label for="name" { (Msg::Name.text(l)) }
                        input #name name="name" value=(vals.name) required placeholder="reporte-diario";
                    }
                }
                div class=(field_class(err, "kind")) {
                    label for="kind" { (Msg::Kind.text(l)) }
                    select #kind name="kind" {
                        @for k in state.broker.catalog().kinds() {
                            option value=(k.name) selected[vals.kind == k.name] { (k.name) " (" (k.queue) ")" }
                        }
                    }
                }
                div class=(field_class(err, "args")) {
                    label for="args" { (Msg::ArgsJson.text(l)) }
                    textarea #args name="args" { (vals.args) }
                }
                div class=(field_class(err, "queue")) {
                    label for="queue" { (Msg::QueueOptional.text(l)) }
                    input #queue name="queue" value=(vals.queue);
                }
                div.field {
                    label { (Msg::Schedule.text(l)) }
                    label style="display:inline" { input type="radio" name="tipo" value="cron" checked[!vals.every]; " cron" }
                    " "
                    label style="display:inline" { input type="radio" name="tipo" value="intervalo" checked[vals.every]; " " (Msg::Interval.text(l)) }
                }
                div class=(field_class(err, "cron")) {
                    label for="cron" { (Msg::CronHelp.text(l)) }
                    input #cron name="cron" value=(vals.cron) placeholder="0 23 * * *";
                }
                div class=(field_class(err, "interval_secs")) {
                    label for="interval_secs" { (Msg::IntervalSecs.text(l)) }
                    input #interval_secs name="interval_secs" value=(vals.interval_secs) inputmode="numeric";
                }
                div class=(field_class(err, "timezone")) {
                    label for="timezone" { (Msg::Zone.text(l)) }
                    input #timezone name="timezone" value=(vals.timezone) placeholder="America/Lima";
                }
                div.field {
                    label { input #enabled type="checkbox" name="enabled" checked[vals.enabled]; " " (Msg::Enabled.text(l)) }
                }
                div class=(field_class(err, "description")) {
                    label for="description" { (Msg::Description.text(l)) }
                    input #description name="description" value=(vals.description);
                }
                button #save type="submit" { (Msg::Save.text(l)) }
            }
        }
    };
    page(&v.chrome(Tab::Schedules), title.text(l), body)
}

/// An empty form.
#[get("/programacion/nueva")]
pub async fn new_form(
    state: web::Data<AppState>,
    admin: AdminViewer,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    let vals = Values {
        args: "{}".into(),
        timezone: "America/Lima".into(),
        enabled: true,
        ..Values::default()
    };
    Ok(html_response(
        StatusCode::OK,
        form_page(&state, &v, None, &vals, None, None),
    ))
}

/// A refused form: 400 (or the error's status) with the form again, the error on top.
fn refused(
    state: &AppState,
    v: &Viewer,
    editing: Option<&str>,
    vals: &Values,
    e: ApiError,
) -> HttpResponse {
    use actix_web::ResponseError;
    let status = e.status_code();
    html_response(status, form_page(state, v, editing, vals, Some(&e), None))
}

#[post("/programacion/nueva")]
pub async fn create(
    state: web::Data<AppState>,
    a: AdminAction,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let vals = Values::from_form(&a.form);
    let p = match parse(&vals) {
        Ok(p) => p,
        Err(e) => return Ok(refused(&state, v, None, &vals, e)),
    };
    let new = NewPeriodic {
        name: vals.name.clone(),
        kind: vals.kind.clone(),
        args: Some(p.args),
        queue: Some(vals.queue.clone()).filter(|q| !q.is_empty()),
        cron: p.cron,
        interval_secs: p.interval_secs,
        timezone: Some(vals.timezone.clone()).filter(|z| !z.is_empty()),
        enabled: Some(vals.enabled),
        one_off: None,
        expires_at: None,
        description: Some(vals.description.clone()),
    };
    let mut conn = state.db_conn().await.map_err(|e| v.fail(e))?;
    match periodic::create(&mut conn, state.broker.catalog(), new).await {
        Ok(t) => Ok(see_other(&format!("/console/programacion/{}", t.name))),
        Err(e) => Ok(refused(&state, v, None, &vals, e.into())),
    }
}

/// A schedule's edit form.
#[get("/programacion/{name}")]
pub async fn edit_form(
    state: web::Data<AppState>,
    admin: AdminViewer,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    let l = v.lang;
    let t = periodic::get(&mut *state.db_conn().await.map_err(|e| v.fail(e))?, &name)
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    let tz = t.tz().unwrap_or(v.tz);
    let runs = t.next_runs(Utc::now(), NEXT_RUNS);
    let summary = html! {
        section.card #schedule-summary {
            h2 { (t.name) }
            p { (Msg::LastRun.text(l)) ": " (time(t.last_run_at, tz)) " · " (Msg::RunCount.text(l)) ": " (t.total_run_count) }
            p { (Msg::NextRuns.text(l)) " (" (t.timezone) "):" }
            ol #next-runs { @for r in &runs { li { (time(Some(*r), tz)) } } }
            form.inline method="post" action={ "/console/programacion/" (t.name) "/ejecutar" } {
                input type="hidden" name="csrf" value=(v.session.csrf_token);
                button #run-now type="submit" { (Msg::RunNow.text(l)) }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        form_page(
            &state,
            &v,
            Some(&t.name),
            &Values::of(&t),
            None,
            Some(summary),
        ),
    ))
}

#[post("/programacion/{name}")]
pub async fn update(
    state: web::Data<AppState>,
    a: AdminAction,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let mut vals = Values::from_form(&a.form);
    vals.name = name.to_string();
    let p = match parse(&vals) {
        Ok(p) => p,
        Err(e) => return Ok(refused(&state, v, Some(&name), &vals, e)),
    };
    let patch = PeriodicPatch {
        kind: Some(vals.kind.clone()),
        args: Some(p.args),
        queue: Some(vals.queue.clone()),
        cron: p.cron,
        interval_secs: p.interval_secs,
        timezone: Some(vals.timezone.clone()).filter(|z| !z.is_empty()),
        enabled: Some(vals.enabled),
        one_off: None,
        expires_at: None,
        description: Some(vals.description.clone()),
    };
    let mut conn = state.db_conn().await.map_err(|e| v.fail(e))?;
    match periodic::update(&mut conn, state.broker.catalog(), &name, patch).await {
        Ok(t) => Ok(see_other(&format!("/console/programacion/{}", t.name))),
        Err(e) => Ok(refused(&state, v, Some(&name), &vals, e.into())),
    }
}

async fn set_enabled(
    state: &AppState,
    a: &AdminAction,
    name: &str,
    enabled: bool,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let patch = PeriodicPatch {
        enabled: Some(enabled),
        ..PeriodicPatch::default()
    };
    periodic::update(
        &mut *state.db_conn().await.map_err(|e| v.fail(e))?,
        state.broker.catalog(),
        name,
        patch,
    )
    .await
    .map_err(|e| v.fail(ApiError::from(e)))?;
    Ok(see_other("/console/programacion"))
}

#[post("/programacion/{name}/activar")]
pub async fn enable(
    state: web::Data<AppState>,
    a: AdminAction,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    set_enabled(&state, &a, &name, true).await
}

#[post("/programacion/{name}/desactivar")]
pub async fn disable(
    state: web::Data<AppState>,
    a: AdminAction,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    set_enabled(&state, &a, &name, false).await
}

/// Enqueues the schedule's job now and opens its task.
#[post("/programacion/{name}/ejecutar")]
pub async fn run_now(
    state: web::Data<AppState>,
    a: AdminAction,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let run = crate::routes::periodic::enqueue_now(&state, &name)
        .await
        .map_err(|e| v.fail(e))?;
    Ok(see_other(&format!("/console/tareas/{}", run.task_id)))
}

/// Deletes a schedule after a confirmation step.
#[post("/programacion/{name}/eliminar")]
pub async fn delete(
    state: web::Data<AppState>,
    a: AdminAction,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let l = v.lang;
    if !a.form.is_on("confirmado") {
        let body = confirm(
            l,
            &v.session.csrf_token,
            &format!("/console/programacion/{name}/eliminar"),
            &Msg::ConfirmDelete.text(l).replace("{}", &name),
            &[],
            "/console/programacion",
        );
        return Ok(html_response(
            StatusCode::OK,
            page(&v.chrome(Tab::Schedules), Msg::Confirm.text(l), body),
        ));
    }
    let mut conn = state.db_conn().await.map_err(|e| v.fail(e))?;
    if periodic::delete(&mut conn, &name)
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?
    {
        Ok(see_other("/console/programacion"))
    } else {
        Err(v.fail(ApiError::from(periodic::PeriodicError::NotFound(
            name.into_inner(),
        ))))
    }
}
