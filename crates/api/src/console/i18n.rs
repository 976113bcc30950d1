//! Every word the console shows, in Spanish (the default) and English: one table, one
//! [`Msg`] per string, so a page cannot show a string that is not translated. `{}` in a text is
//! filled by the page (`str::replace`).

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Es,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "es" => Some(Self::Es),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Es => "es",
            Self::En => "en",
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::Es => Self::En,
            Self::En => Self::Es,
        }
    }
}

macro_rules! messages {
    ($($name:ident => $es:literal, $en:literal;)+) => {
        /// One string of the console.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($name),+ }

        impl Msg {
            /// Every message, for the table's own test.
            pub const ALL: &'static [Msg] = &[$(Msg::$name),+];

            /// The text in `lang`.
            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((Msg::$name, Lang::Es) => $es, (Msg::$name, Lang::En) => $en,)+
                }
            }
        }
    };
}

messages! {
    ConsoleName => "Consola Faena", "Faena console";
    OtherLanguage => "English", "Español";
    SignIn => "Ingresar", "Sign in";
    SignOut => "Salir", "Sign out";
    Username => "Usuario", "Username";
    Password => "Contraseña", "Password";
    LoginMissing => "Escriba su usuario y su contraseña.", "Enter your username and password.";
    LoginWrong => "Usuario o contraseña incorrectos.", "Wrong username or password.";
    LoginDisabled => "Este usuario está desactivado: pida a un administrador que lo active.", "This user is disabled: ask an admin to enable it.";
    LoginThrottled => "Demasiados intentos fallidos: espere {} segundos y vuelva a intentar.", "Too many failed sign-ins: wait {} seconds and try again.";
    TabSummary => "Resumen", "Overview";
    TabTasks => "Tareas", "Tasks";
    TabSchedules => "Programación", "Schedules";
    TabReceipts => "Comprobantes", "Receipts";
    ErrAdminsOnly => "Esta página es solo para administradores.", "This page is for admins only.";
    ErrCsrf => "El formulario venció o no es de esta sesión: recargue la página e intente de nuevo.", "The form expired or is not from this session: reload the page and try again.";
    ErrField => "Un campo del formulario no es válido.", "A field of the form is not valid.";
    ErrRefused => "No se pudo hacer:", "It could not be done:";
    ErrServer => "El servicio no está disponible en este momento.", "The service is unavailable right now.";
    ErrCode => "Código:", "Code:";
    BackToConsole => "Volver a la consola", "Back to the console";
    Confirm => "Confirmar", "Confirm";
    ConfirmYes => "Sí, hacerlo", "Yes, do it";
    ConfirmNo => "No, volver", "No, go back";
    ConfirmRetry => "¿Reintentar la tarea {}? Vuelve a PENDIENTE con sus intentos en cero.", "Retry task {}? It goes back to PENDING with its attempts reset.";
    ConfirmCancel => "¿Cancelar la tarea {}? No se ejecutará.", "Cancel task {}? It will not run.";
    ConfirmPurgeDead => "¿Borrar las {} tareas muertas de la cola {}? No se puede deshacer.", "Delete the {} dead tasks of queue {}? This cannot be undone.";
    ConfirmPurgePending => "¿Borrar las {} tareas en espera (pendientes y programadas) de la cola {}? No se puede deshacer.", "Delete the {} waiting tasks (pending and scheduled) of queue {}? This cannot be undone.";
    ConfirmDelete => "¿Eliminar la programación {}?", "Delete the schedule {}?";
    Queues => "Colas", "Queues";
    Queue => "Cola", "Queue";
    NoQueues => "Todavía no hay colas: aparecen con su primera tarea.", "No queues yet: they appear with their first task.";
    StatePending => "Pendientes", "Pending";
    StateScheduled => "Programadas", "Scheduled";
    StateRunning => "En curso", "Running";
    StateDead => "Muertas", "Dead";
    StateSucceeded => "Terminada", "Succeeded";
    StateCancelled => "Cancelada", "Cancelled";
    SucceededTotal => "Exitosas (total)", "Succeeded (total)";
    FailedTotal => "Fallidas (total)", "Failed (total)";
    Paused => "En pausa", "Paused";
    Workers => "Trabajadores", "Workers";
    Worker => "Trabajador", "Worker";
    NoWorkers => "Ningún trabajador activo: las tareas esperan hasta que uno arranque.", "No live worker: tasks wait until one starts.";
    AllQueues => "Todas las colas", "All queues";
    RunningJobs => "En curso / capacidad", "Running / capacity";
    HeartbeatAge => "Último latido", "Last heartbeat";
    StartedAt => "Inicio", "Started";
    FinishedAt => "Fin", "Finished";
    History => "Historial", "History";
    LastHour => "Última hora", "Last hour";
    LastDay => "Último día", "Last day";
    LastWeek => "Última semana", "Last week";
    ChartThroughput => "Tareas terminadas", "Throughput";
    ChartFailures => "Fallas", "Failures";
    ChartLatency => "Espera hasta el inicio (ms)", "Enqueue-to-start latency (ms)";
    Succeeded => "Exitosas", "Succeeded";
    Failed => "Fallidas", "Failed";
    AttemptSucceeded => "Exitoso", "Succeeded";
    AttemptRetried => "Falló, se reintentará", "Failed, will be retried";
    AttemptDead => "Falló, sin más intentos", "Failed, no attempts left";
    LatencyP50 => "mediana", "median";
    Time => "Hora", "Time";
    LatencyP95 => "p95", "p95";
    HistoryNote => "Por minuto, de todas las colas; se guarda 7 días.", "Per minute, every queue; kept 7 days.";
    State => "Estado", "State";
    Kind => "Tipo", "Kind";
    AllKinds => "Todos los tipos", "All kinds";
    AllStates => "Todos los estados", "All states";
    Filter => "Filtrar", "Filter";
    TaskById => "Abrir una tarea por su ID", "Open a task by its ID";
    Open => "Abrir", "Open";
    ListLimit => "Se muestran hasta {} tareas por cola, las más antiguas primero.", "Up to {} tasks per queue, oldest first.";
    NoTasks => "No hay tareas con estos filtros.", "No task matches these filters.";
    Attempts => "Intentos", "Attempts";
    EnqueuedAt => "Encolada", "Enqueued";
    Error => "Error", "Error";
    ErrorClass => "Clase de error", "Error class";
    PurgeDead => "Vaciar las muertas de esta cola…", "Purge this queue's dead tasks…";
    PurgePending => "Vaciar las que esperan en esta cola…", "Purge this queue's waiting tasks…";
    Task => "Tarea", "Task";
    NextRun => "Próxima ejecución", "Next run";
    Args => "Argumentos", "Arguments";
    Result => "Resultado", "Result";
    NoResultYet => "Todavía no hay resultado.", "No result yet.";
    AttemptLog => "Intentos", "Attempts";
    NoAttemptsYet => "Ningún intento terminado todavía.", "No attempt has ended yet.";
    Outcome => "Resultado", "Outcome";
    Retry => "Reintentar", "Retry";
    Cancel => "Cancelar", "Cancel";
    NewSchedule => "Nueva programación", "New schedule";
    EditSchedule => "Editar programación", "Edit schedule";
    NoSchedules => "No hay programaciones.", "No schedules.";
    Name => "Nombre", "Name";
    Schedule => "Frecuencia", "Schedule";
    Actions => "Acciones", "Actions";
    Zone => "Zona horaria", "Time zone";
    Enabled => "Activa", "Enabled";
    LastRun => "Última ejecución", "Last run";
    RunCount => "Veces ejecutada", "Run count";
    NextRuns => "Próximas 5 ejecuciones", "Next 5 runs";
    NoKind => "tipo desconocido", "unknown kind";
    Yes => "Sí", "Yes";
    No => "No", "No";
    RunNow => "Ejecutar ahora", "Run now";
    Enable => "Activar", "Enable";
    Disable => "Desactivar", "Disable";
    Delete => "Eliminar", "Delete";
    EverySecs => "cada {} s", "every {} s";
    ArgsJson => "Argumentos (JSON)", "Arguments (JSON)";
    QueueOptional => "Cola (vacío: la del tipo)", "Queue (empty: the kind's own)";
    Interval => "intervalo", "interval";
    CronHelp => "Cron (5 campos, o 6 con segundos; p. ej. 0 23 * * * o 0 9 * * Mon-Fri)", "Cron (5 fields, or 6 with seconds; e.g. 0 23 * * * or 0 9 * * Mon-Fri)";
    IntervalSecs => "Intervalo en segundos", "Interval in seconds";
    Description => "Descripción", "Description";
    Save => "Guardar", "Save";
    NeedsAPerson => "Necesitan a una persona (error, rechazados, en conflicto)", "Need a person (error, rejected, in conflict)";
    NothingToDo => "Ningún comprobante necesita atención.", "No receipt needs attention.";
    DueSoon => "Vencen en menos de 24 horas sin respuesta de SUNAT", "Due within 24 hours without SUNAT's answer";
    NothingDueSoon => "Ninguno vence en las próximas 24 horas.", "None is due in the next 24 hours.";
    ByState => "Por estado", "By state";
    NoSales => "No hay comprobantes.", "No receipts.";
    Number => "Número", "Number";
    DocType => "Tipo", "Type";
    Factura => "Factura", "Invoice (factura)";
    Boleta => "Boleta", "Receipt (boleta)";
    IssueDate => "Fecha de emisión", "Issue date";
    SunatCode => "Código SUNAT", "SUNAT code";
    WhatItMeans => "Qué significa", "What it means";
    Deadline => "Plazo de envío", "Sending deadline";
    PastDeadline => "vencido", "past deadline";
    Receipt => "Comprobante", "Receipt";
    Customer => "Cliente", "Customer";
    Total => "Total", "Total";
    Cancelled => "Anulado", "Cancelled";
    DownloadXml => "Descargar XML", "Download XML";
    DownloadCdr => "Descargar CDR", "Download CDR";
    DownloadPdf => "Descargar PDF", "Download PDF";
    Resend => "Reenviar a SUNAT", "Send to SUNAT again";
    Submissions => "Envíos a SUNAT", "Sends to SUNAT";
    NoSubmissions => "Todavía no se envió.", "Not sent yet.";
    SunatPending => "Pendiente de envío a SUNAT", "Waiting to be sent to SUNAT";
    SunatSending => "Enviando a SUNAT", "Being sent to SUNAT";
    SunatAccepted => "Aceptado por SUNAT", "Accepted by SUNAT";
    SunatRejected => "Rechazado por SUNAT", "Rejected by SUNAT";
    SunatError => "Error de envío: se reintenta o necesita revisión", "Sending failed: retried, or needs a person";
    SunatConflict => "Conflicto: SUNAT ya tiene este número con otros datos; necesita revisión", "Conflict: SUNAT holds this number with other data; needs a person";
    SunatVoided => "Anulado en SUNAT (comunicación de baja o resumen diario)", "Voided at SUNAT (Comunicación de Baja or Resumen Diario)";
    OutAccepted => "SUNAT lo aceptó.", "SUNAT accepted it.";
    OutObserved => "SUNAT lo aceptó con observaciones: corrija los datos en los próximos comprobantes.", "SUNAT accepted it with observations: fix the data in the next receipts.";
    OutRejected => "SUNAT lo rechazó: el número queda usado y no se reenvía; emita un comprobante nuevo con los datos corregidos.", "SUNAT rejected it: the number is used up and is not sent again; issue a new receipt with the data fixed.";
    OutRetryable => "Falla temporal de SUNAT: se reintenta solo.", "A temporary SUNAT failure: it is retried on its own.";
    OutUnknown => "No se sabe si SUNAT lo recibió: el próximo envío lo aclara.", "Unknown whether SUNAT got it: the next send settles it.";
    OutConflict => "SUNAT ya tiene este número con otros datos: búsquelo en la consulta de validez de SUNAT antes de hacer nada.", "SUNAT holds this number with other data: look it up at SUNAT before doing anything.";
    OutAlreadyRegistered => "SUNAT ya lo tenía registrado: se da por aceptado.", "SUNAT had it registered already: taken as accepted.";
    OutConfigError => "Falta o está mal la configuración de SUNAT (RUC, usuario SOL, certificado): corríjala y reenvíe.", "The SUNAT settings are missing or wrong (RUC, SOL user, certificate): fix them and send again.";
    OutDocumentError => "El documento tiene un error que SUNAT no acepta: revise los datos de la venta.", "The document has an error SUNAT does not accept: check the sale's data.";
    OutNeedsSummary => "Boleta fuera de plazo: debe ir en un Resumen Diario.", "A boleta past its deadline: it must go in a Resumen Diario.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_both_languages_and_the_sunat_states_match_the_shop() {
        for m in Msg::ALL {
            for l in [Lang::Es, Lang::En] {
                assert!(!m.text(l).trim().is_empty(), "{m:?} in {l:?}");
            }
        }
        use faena_shop::states::SunatStatus as S;
        let pairs = [
            (S::Pending, Msg::SunatPending),
            (S::Sending, Msg::SunatSending),
            (S::Accepted, Msg::SunatAccepted),
            (S::Rejected, Msg::SunatRejected),
            (S::Error, Msg::SunatError),
            (S::Conflict, Msg::SunatConflict),
            (S::Voided, Msg::SunatVoided),
        ];
        for (s, m) in pairs {
            assert_eq!(m.text(Lang::Es), s.label(), "{s:?}");
        }
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::default().other(), Lang::En);
    }
}
