//! The shop's stores: `faena stores list|add|set|disable|enable`. A store is named by its code or
//! its id; the rules (4-digit establishment codes, SUNAT series, unique across stores) are in
//! `faena_shop::stores`, shared with `/api/stores`.

use std::io::Write;

use clap::Subcommand;
use faena_shop::stores::{self, NewStore, Store, StoreError, StoreKey, StorePatch};

use super::common::{pg, print_json, say, CliSettings};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum StoresCommand {
    /// Every store: code, name, SUNAT establishment, series, active.
    List,
    /// Add a store: `faena stores add lima-centro --name "Tienda Lima Centro" --establishment 0001
    /// --boleta-series B002 --factura-series F002 --boleta-note-series BC02 --factura-note-series FC02`.
    Add {
        /// 2 to 32 lowercase letters, digits or `-`, from a letter.
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        address: String,
        /// The SUNAT establishment code: exactly 4 digits (0000 is the main store).
        #[arg(long)]
        establishment: String,
        #[arg(long)]
        boleta_series: String,
        #[arg(long)]
        factura_series: String,
        #[arg(long)]
        boleta_note_series: String,
        #[arg(long)]
        factura_note_series: String,
    },
    /// Change a store (by code or id): only the options given.
    Set {
        store: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long)]
        boleta_series: Option<String>,
        #[arg(long)]
        factura_series: Option<String>,
        #[arg(long)]
        boleta_note_series: Option<String>,
        #[arg(long)]
        factura_note_series: Option<String>,
        /// true or false (a disabled store cannot sell).
        #[arg(long)]
        active: Option<bool>,
    },
    /// Disable a store: it cannot sell until enabled again.
    Disable { store: String },
    /// Enable a disabled store.
    Enable { store: String },
}

/// One line about a store, in Spanish (the shop's staff read it).
fn sentence(s: &Store) -> String {
    format!(
        "tienda {} (id {}): {}, establecimiento {}, boletas {}, facturas {}, notas {}/{}, {}",
        s.code,
        s.id,
        s.name,
        s.establishment_code,
        s.boleta_series,
        s.factura_series,
        s.boleta_note_series,
        s.factura_note_series,
        if s.active { "activa" } else { "desactivada" }
    )
}

/// `faena stores ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: StoresCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let mut conn = pg(settings).await?;
    let (key, patch) = match command {
        StoresCommand::List => {
            let list = stores::list_stores(&mut conn).await?;
            if json {
                print_json(out, &list)?;
                return Ok(exit::OK);
            }
            writeln!(
                out,
                "{:<4} {:<16} {:<28} {:<6} {:<6} {:<7} {:<9} ACTIVA",
                "ID", "CÓDIGO", "NOMBRE", "ESTAB", "BOLETA", "FACTURA", "NOTAS"
            )?;
            for s in &list {
                writeln!(
                    out,
                    "{:<4} {:<16} {:<28} {:<6} {:<6} {:<7} {:<9} {}",
                    s.id,
                    s.code,
                    s.name,
                    s.establishment_code,
                    s.boleta_series,
                    s.factura_series,
                    format!("{}/{}", s.boleta_note_series, s.factura_note_series),
                    if s.active { "sí" } else { "no" }
                )?;
            }
            return Ok(exit::OK);
        }
        StoresCommand::Add {
            code,
            name,
            address,
            establishment,
            boleta_series,
            factura_series,
            boleta_note_series,
            factura_note_series,
        } => {
            let new = NewStore {
                code,
                name,
                address,
                establishment_code: establishment,
                boleta_series,
                factura_series,
                boleta_note_series,
                factura_note_series,
                active: None,
            };
            let store = stores::create_store(&mut conn, &new)
                .await
                .map_err(option_names)?;
            say(
                out,
                json,
                format!("creada: {}", sentence(&store)),
                serde_json::to_value(&store)?,
            )?;
            return Ok(exit::OK);
        }
        StoresCommand::Set {
            store,
            name,
            address,
            establishment,
            boleta_series,
            factura_series,
            boleta_note_series,
            factura_note_series,
            active,
        } => (
            store,
            StorePatch {
                name,
                address,
                establishment_code: establishment,
                boleta_series,
                factura_series,
                boleta_note_series,
                factura_note_series,
                active,
            },
        ),
        StoresCommand::Disable { store } => (
            store,
            StorePatch {
                active: Some(false),
                ..Default::default()
            },
        ),
        StoresCommand::Enable { store } => (
            store,
            StorePatch {
                active: Some(true),
                ..Default::default()
            },
        ),
    };
    let key = StoreKey::parse("store", &key).map_err(option_names)?;
    match stores::update_store(&mut conn, &key, &patch).await {
        Ok(store) => {
            say(out, json, sentence(&store), serde_json::to_value(&store)?)?;
            Ok(exit::OK)
        }
        Err(StoreError::NotFound(m)) => {
            say(
                out,
                json,
                format!("no existe la tienda {key}: {m}"),
                serde_json::json!({ "store": null }),
            )?;
            Ok(exit::FAILED)
        }
        Err(e) => Err(option_names(e)),
    }
}

/// The error in the CLI's words: a field is the option of the same name (`--boleta-series`).
fn option_names(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Invalid { field, message } => {
            let option = match field.as_str() {
                "establishment_code" => "--establishment".to_owned(),
                "store" => "STORE".to_owned(),
                "code" => "CODE".to_owned(),
                f => format!("--{}", f.replace('_', "-")),
            };
            anyhow::anyhow!("{option}: {message}")
        }
        other => anyhow::anyhow!(other),
    }
}
