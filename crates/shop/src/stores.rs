//! Stores: each one a SUNAT establishment (its `establishment_code`, "0000" for the main one) with
//! its own series of boletas, facturas and their notes. Sellers belong to a store; a sale is made
//! in its seller's store (an admin may name another) and takes that store's series; its receipt
//! carries the store's establishment code (`AddressTypeCode`).
//!
//! Series are unique across stores, and a series another store's sales used is never taken:
//! every write locks the table (`SHARE ROW EXCLUSIVE`, so writers queue and readers do not wait)
//! and checks the four series against the other stores and their sales. Correlatives stay in
//! `series_counters`, one row per series, so they stay atomic per series as before.
//!
//! The main store is the one with establishment code "0000": the migration creates it, its code
//! never changes and no other store can take it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_core::db::QueryError;
use faena_sunat::document::{DocumentType, Series};
use serde::{Deserialize, Serialize};

use crate::schema::{sale_stores, stores, users};

/// The establishment code of the main store (SUNAT's domicilio fiscal).
pub const MAIN_ESTABLISHMENT: &str = "0000";

/// A store that cannot be found, made or changed, or used for a sale. Stable [`StoreError::code`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("field `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// The database refused the data, or could not answer; the text is ours, never PostgreSQL's.
    #[error(transparent)]
    Db(#[from] QueryError),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_field",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Conflict(_) => "conflict",
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_unavailable",
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A store as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = stores, check_for_backend(diesel::pg::Pg))]
pub struct Store {
    pub id: i64,
    /// Short name for URLs and the CLI: 2 to 32 lowercase letters, digits or `-`, from a letter.
    #[schema(example = "lima-centro")]
    pub code: String,
    #[schema(example = "Tienda Lima Centro")]
    pub name: String,
    pub address: String,
    /// As registered with SUNAT: 4 digits, "0000" for the main store.
    #[schema(example = "0001")]
    pub establishment_code: String,
    /// A disabled store cannot sell.
    pub active: bool,
    #[schema(example = "B002")]
    pub boleta_series: String,
    #[schema(example = "F002")]
    pub factura_series: String,
    /// Credit and debit notes on this store's boletas.
    #[schema(example = "BC02")]
    pub boleta_note_series: String,
    /// Credit and debit notes on this store's facturas.
    #[schema(example = "FC02")]
    pub factura_note_series: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Whether this is the main store (establishment "0000").
    pub fn is_main(&self) -> bool {
        self.establishment_code == MAIN_ESTABLISHMENT
    }

    /// The store's series of `doc`. A `requested` series (the sale's `series` field) must be that
    /// one: a store issues on its own series only.
    pub fn series_for(
        &self,
        doc: DocumentType,
        requested: Option<&Series>,
    ) -> Result<Series, StoreError> {
        let own = match doc {
            DocumentType::Boleta => &self.boleta_series,
            DocumentType::Factura => &self.factura_series,
        };
        let own = Series::parse_for(own, doc).map_err(|e| {
            StoreError::Conflict(format!(
                "store {} has no valid {} series ({e}): fix it with PATCH /api/stores/{}",
                self.code,
                doc.name(),
                self.code
            ))
        })?;
        match requested {
            Some(r) if r != &own => Err(invalid(
                "series",
                format!(
                    "store {} issues {}s on {own}, not {r}: leave `series` out or give {own}",
                    self.code,
                    doc.name()
                ),
            )),
            _ => Ok(own),
        }
    }
}

impl Store {
    /// The store's series of credit notes of its `doc`s (`boleta_note_series` for boletas,
    /// `factura_note_series` for facturas): a note of a sale is issued on the series of the
    /// store the sale was made in.
    pub fn note_series_for(&self, doc: DocumentType) -> Result<Series, StoreError> {
        let own = match doc {
            DocumentType::Boleta => &self.boleta_note_series,
            DocumentType::Factura => &self.factura_note_series,
        };
        Series::parse_for(own, doc).map_err(|e| {
            StoreError::Conflict(format!(
                "store {} has no valid series for notes of its {}s ({e}): fix it with \
                 PATCH /api/stores/{}",
                self.code,
                doc.name(),
                self.code
            ))
        })
    }
}

/// A new store (`POST /api/stores`, `faena stores add`). Every series is required: series are
/// unique across stores.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    #[schema(example = "lima-centro")]
    pub code: String,
    #[schema(example = "Tienda Lima Centro")]
    pub name: String,
    #[serde(default)]
    pub address: String,
    /// Exactly 4 digits, as registered with SUNAT (Ficha RUC, establecimientos anexos).
    #[schema(example = "0001")]
    pub establishment_code: String,
    /// B and 3 digits or uppercase letters.
    #[schema(example = "B002")]
    pub boleta_series: String,
    /// F and 3 digits or uppercase letters.
    #[schema(example = "F002")]
    pub factura_series: String,
    #[schema(example = "BC02")]
    pub boleta_note_series: String,
    #[schema(example = "FC02")]
    pub factura_note_series: String,
    /// Default true.
    #[serde(default)]
    pub active: Option<bool>,
}

/// A change to a store (`PATCH /api/stores/{store}`, `faena stores set|disable`): only the fields
/// given change. The code never changes; the establishment code only while the store has no sales
/// (its receipts carry it), and never the main store's.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub establishment_code: Option<String>,
    #[serde(default)]
    pub boleta_series: Option<String>,
    #[serde(default)]
    pub factura_series: Option<String>,
    #[serde(default)]
    pub boleta_note_series: Option<String>,
    #[serde(default)]
    pub factura_note_series: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// How a store is named in a path or a query: its id, or its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKey {
    Id(i64),
    Code(String),
}

impl StoreKey {
    /// Digits are an id; anything else must be a store code. The error names `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self, StoreError> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(Self::Id)
                .map_err(|_| invalid(field, format!("`{s}` is not a store id")));
        }
        parse_code(field, s).map(Self::Code)
    }
}

impl std::fmt::Display for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Code(c) => f.write_str(c),
        }
    }
}

fn parse_code(field: &str, s: &str) -> Result<String, StoreError> {
    let b = s.as_bytes();
    let ok = (2..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid(
            field,
            format!(
                "`{s}` is not a store code: 2 to 32 lowercase letters, digits or `-`, starting \
                 with a letter (e.g. lima-centro)"
            ),
        ))
    }
}

fn parse_name(s: &str) -> Result<String, StoreError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "give 1 to 100 characters without line breaks (e.g. Tienda Lima Centro)",
        ));
    }
    Ok(t.to_owned())
}

fn parse_address(s: &str) -> Result<String, StoreError> {
    let t = s.trim();
    if t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(invalid(
            "address",
            "give at most 200 characters without line breaks",
        ));
    }
    Ok(t.to_owned())
}

/// Exactly 4 digits, as SUNAT registers establishments ("0000" is the main one).
fn parse_establishment(s: &str) -> Result<String, StoreError> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(invalid(
            "establishment_code",
            format!(
                "`{s}` is not an establishment code: exactly 4 digits as registered with SUNAT \
                 (e.g. 0001; 0000 is the main store)"
            ),
        ))
    }
}

/// A series exactly as SUNAT requires it: the letter, then 3 digits or uppercase letters.
fn parse_series(field: &str, s: &str, letter: char) -> Result<String, StoreError> {
    let b = s.as_bytes();
    let ok = b.len() == 4
        && char::from(b[0]) == letter
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid(
            field,
            format!(
                "`{s}` is not a series SUNAT accepts here: {letter} and 3 digits or uppercase \
                 letters (e.g. {letter}002)"
            ),
        ))
    }
}

/// The four series of a store, by field name, checked.
struct SeriesSet([(&'static str, String); 4]);

impl SeriesSet {
    fn check(&self) -> Result<(), StoreError> {
        let [(_, b), (_, f), (_, bn), (_, fn_)] = &self.0;
        if b == bn {
            return Err(invalid(
                "boleta_note_series",
                format!("{bn} is the store's boleta series too: notes need their own series"),
            ));
        }
        if f == fn_ {
            return Err(invalid(
                "factura_note_series",
                format!("{fn_} is the store's factura series too: notes need their own series"),
            ));
        }
        Ok(())
    }

    fn values(&self) -> Vec<String> {
        self.0.iter().map(|(_, s)| s.clone()).collect()
    }
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Text)]
    series: String,
    #[diesel(sql_type = Text)]
    code: String,
}

/// Fails when one of `set` is a series of another store, or was used by another store's sales.
/// The caller holds the table lock.
async fn check_series_free(
    conn: &mut AsyncPgConnection,
    store_id: Option<i64>,
    set: &SeriesSet,
) -> Result<(), StoreError> {
    let values = set.values();
    let taken: Vec<Taken> = diesel::sql_query(
        "SELECT x.series, st.code FROM stores st \
         CROSS JOIN LATERAL (VALUES (st.boleta_series), (st.factura_series), \
             (st.boleta_note_series), (st.factura_note_series)) AS x(series) \
         WHERE st.id IS DISTINCT FROM $1 AND x.series = ANY($2) \
         UNION ALL \
         SELECT DISTINCT s.series, st.code FROM sales s JOIN stores st ON st.id = s.store_id \
         WHERE s.store_id IS DISTINCT FROM $1 AND s.series = ANY($2) \
         UNION ALL \
         SELECT DISTINCT n.series, st.code FROM credit_notes n JOIN sales s ON s.id = n.sale_id \
         JOIN stores st ON st.id = s.store_id \
         WHERE s.store_id IS DISTINCT FROM $1 AND n.series = ANY($2) \
         LIMIT 1",
    )
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(store_id)
    .bind::<Array<Text>, _>(&values)
    .load(conn)
    .await?;
    if let Some(t) = taken.into_iter().next() {
        let field = set
            .0
            .iter()
            .find(|(_, s)| *s == t.series)
            .map_or("boleta_series", |(f, _)| f);
        return Err(StoreError::Conflict(format!(
            "field `{field}`: {} belongs to store {} (its series, its sales' or its notes'); series are \
             unique across stores: choose another",
            t.series, t.code
        )));
    }
    Ok(())
}

/// Serializes writers of `stores` (readers do not wait): the series check and the write are one.
async fn lock_stores(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    diesel::sql_query("LOCK TABLE stores IN SHARE ROW EXCLUSIVE MODE")
        .execute(conn)
        .await?;
    Ok(())
}

/// Every store, by id.
pub async fn list_stores(conn: &mut AsyncPgConnection) -> Result<Vec<Store>, StoreError> {
    Ok(stores::table
        .order(stores::id.asc())
        .select(Store::as_select())
        .load(conn)
        .await?)
}

/// The active stores, by id.
pub async fn active_stores(conn: &mut AsyncPgConnection) -> Result<Vec<Store>, StoreError> {
    Ok(stores::table
        .filter(stores::active.eq(true))
        .order(stores::id.asc())
        .select(Store::as_select())
        .load(conn)
        .await?)
}

/// The store named by `key`, if any.
pub async fn find_store<C>(conn: &mut C, key: &StoreKey) -> Result<Option<Store>, StoreError>
where
    C: diesel_async::AsyncConnectionCore<Backend = diesel::pg::Pg> + Send,
{
    let q = stores::table.select(Store::as_select());
    Ok(match key {
        StoreKey::Id(id) => q.find(*id).first(conn).await.optional()?,
        StoreKey::Code(c) => q.filter(stores::code.eq(c)).first(conn).await.optional()?,
    })
}

/// The store named by `key`; `NotFound` says which.
pub async fn get_store(conn: &mut AsyncPgConnection, key: &StoreKey) -> Result<Store, StoreError> {
    find_store(conn, key)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no store {key} (GET /api/stores lists them)")))
}

/// The main store (establishment "0000").
pub async fn main_store<C>(conn: &mut C) -> Result<Store, StoreError>
where
    C: diesel_async::AsyncConnectionCore<Backend = diesel::pg::Pg> + Send,
{
    stores::table
        .filter(stores::establishment_code.eq(MAIN_ESTABLISHMENT))
        .select(Store::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            StoreError::NotFound(
                "no main store (establishment 0000): run `faena migrate`".to_owned(),
            )
        })
}

/// Creates a store after checking every field; 409 when its code, establishment code or a series
/// is another store's.
pub async fn create_store(
    conn: &mut AsyncPgConnection,
    new: &NewStore,
) -> Result<Store, StoreError> {
    let code = parse_code("code", &new.code)?;
    let name = parse_name(&new.name)?;
    let address = parse_address(&new.address)?;
    let establishment = parse_establishment(&new.establishment_code)?;
    let set = SeriesSet([
        (
            "boleta_series",
            parse_series("boleta_series", &new.boleta_series, 'B')?,
        ),
        (
            "factura_series",
            parse_series("factura_series", &new.factura_series, 'F')?,
        ),
        (
            "boleta_note_series",
            parse_series("boleta_note_series", &new.boleta_note_series, 'B')?,
        ),
        (
            "factura_note_series",
            parse_series("factura_note_series", &new.factura_note_series, 'F')?,
        ),
    ]);
    set.check()?;
    let active = new.active.unwrap_or(true);
    conn.transaction::<Store, StoreError, _>(async move |conn| {
        lock_stores(conn).await?;
        if find_store(conn, &StoreKey::Code(code.clone()))
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "field `code`: a store with code {code} exists"
            )));
        }
        check_establishment_free(conn, None, &establishment).await?;
        check_series_free(conn, None, &set).await?;
        let [(_, b), (_, f), (_, bn), (_, fn_)] = &set.0;
        Ok(diesel::insert_into(stores::table)
            .values((
                stores::code.eq(&code),
                stores::name.eq(&name),
                stores::address.eq(&address),
                stores::establishment_code.eq(&establishment),
                stores::active.eq(active),
                stores::boleta_series.eq(b),
                stores::factura_series.eq(f),
                stores::boleta_note_series.eq(bn),
                stores::factura_note_series.eq(fn_),
            ))
            .returning(Store::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

async fn check_establishment_free(
    conn: &mut AsyncPgConnection,
    store_id: Option<i64>,
    establishment: &str,
) -> Result<(), StoreError> {
    let mut q = stores::table
        .filter(stores::establishment_code.eq(establishment))
        .into_boxed();
    if let Some(id) = store_id {
        q = q.filter(stores::id.ne(id));
    }
    let other: Option<String> = q.select(stores::code).first(conn).await.optional()?;
    if let Some(other) = other {
        let what = if establishment == MAIN_ESTABLISHMENT {
            " (the main store's)"
        } else {
            ""
        };
        return Err(StoreError::Conflict(format!(
            "field `establishment_code`: {establishment}{what} is store {other}'s; each \
             establishment is one store"
        )));
    }
    Ok(())
}

/// Whether the store has issued any credit note of its `doc`s.
async fn has_notes(
    conn: &mut AsyncPgConnection,
    store_id: i64,
    doc: DocumentType,
) -> Result<bool, StoreError> {
    #[derive(QueryableByName)]
    struct Any {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let r: Any = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM credit_notes n JOIN sales s ON s.id = n.sale_id \
         WHERE s.store_id = $1 AND s.doc_type = $2) AS found",
    )
    .bind::<BigInt, _>(store_id)
    .bind::<Text, _>(doc.code())
    .get_result(conn)
    .await?;
    Ok(r.found)
}

/// Whether the store has made any sale (of `doc`, when given).
async fn has_sales(
    conn: &mut AsyncPgConnection,
    store_id: i64,
    doc: Option<DocumentType>,
) -> Result<bool, StoreError> {
    let mut q = sale_stores::table
        .filter(sale_stores::store_id.eq(store_id))
        .into_boxed();
    if let Some(d) = doc {
        q = q.filter(sale_stores::doc_type.eq(d.code()));
    }
    Ok(
        diesel::select(diesel::dsl::exists(q.select(sale_stores::id)))
            .get_result(conn)
            .await?,
    )
}

/// Changes the fields `patch` gives; the rules are on [`StorePatch`].
pub async fn update_store(
    conn: &mut AsyncPgConnection,
    key: &StoreKey,
    patch: &StorePatch,
) -> Result<Store, StoreError> {
    let name = patch.name.as_deref().map(parse_name).transpose()?;
    let address = patch.address.as_deref().map(parse_address).transpose()?;
    let establishment = patch
        .establishment_code
        .as_deref()
        .map(parse_establishment)
        .transpose()?;
    let series = |field: &str, v: &Option<String>, letter| {
        v.as_deref()
            .map(|s| parse_series(field, s, letter))
            .transpose()
    };
    let b = series("boleta_series", &patch.boleta_series, 'B')?;
    let f = series("factura_series", &patch.factura_series, 'F')?;
    let bn = series("boleta_note_series", &patch.boleta_note_series, 'B')?;
    let fn_ = series("factura_note_series", &patch.factura_note_series, 'F')?;
    let key = key.clone();
    let active = patch.active;
    conn.transaction::<Store, StoreError, _>(async move |conn| {
        lock_stores(conn).await?;
        let current = get_store(conn, &key).await?;
        if let Some(e) = &establishment {
            if *e != current.establishment_code {
                if current.is_main() {
                    return Err(StoreError::Conflict(format!(
                        "field `establishment_code`: store {} is the main store (0000, the \
                         domicilio fiscal); its establishment code does not change",
                        current.code
                    )));
                }
                if has_sales(conn, current.id, None).await? {
                    return Err(StoreError::Conflict(format!(
                        "field `establishment_code`: store {} has sales whose receipts carry {}; \
                         it cannot change. Create a new store for the new establishment",
                        current.code, current.establishment_code
                    )));
                }
                check_establishment_free(conn, Some(current.id), e).await?;
            }
        }
        let set = SeriesSet([
            (
                "boleta_series",
                b.clone().unwrap_or(current.boleta_series.clone()),
            ),
            (
                "factura_series",
                f.clone().unwrap_or(current.factura_series.clone()),
            ),
            (
                "boleta_note_series",
                bn.clone().unwrap_or(current.boleta_note_series.clone()),
            ),
            (
                "factura_note_series",
                fn_.clone().unwrap_or(current.factura_note_series.clone()),
            ),
        ]);
        set.check()?;
        check_series_free(conn, Some(current.id), &set).await?;
        let [(_, b), (_, f), (_, bn), (_, fn_)] = &set.0;
        Ok(diesel::update(stores::table.find(current.id))
            .set((
                stores::name.eq(name.unwrap_or(current.name)),
                stores::address.eq(address.unwrap_or(current.address)),
                stores::establishment_code.eq(establishment.unwrap_or(current.establishment_code)),
                stores::active.eq(active.unwrap_or(current.active)),
                stores::boleta_series.eq(b),
                stores::factura_series.eq(f),
                stores::boleta_note_series.eq(bn),
                stores::factura_note_series.eq(fn_),
                stores::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Store::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// The store a sale is made in: `requested` (the body's `store_id`) or the seller's own store.
/// A seller may name only their own store (403 otherwise); an admin any. A `user_id` that names
/// no user (a sale made by code, not through the api) sells in the main store. A disabled store
/// cannot sell (409).
///
/// Generic over the connection so a caller can send it together with another statement on one
/// connection (`&AsyncPgConnection` pipelines).
pub async fn store_for_sale<C>(
    conn: &mut C,
    user_id: &str,
    is_admin: bool,
    requested: Option<i64>,
) -> Result<Store, StoreError>
where
    C: diesel_async::AsyncConnectionCore<Backend = diesel::pg::Pg> + Send,
{
    // The seller's store, or the main one for a seller without a users row (an api token), in one
    // query: a sale's and a checkout's hot path runs it before every transaction.
    let own = match user_id.parse::<i64>() {
        Ok(id) => stores::table
            .filter(
                stores::id
                    .nullable()
                    .eq(users::table
                        .find(id)
                        .select(users::store_id.nullable())
                        .single_value())
                    .or(stores::establishment_code.eq(MAIN_ESTABLISHMENT).nullable()),
            )
            // The seller's own first: the main store only when the seller has none.
            .order(stores::establishment_code.eq(MAIN_ESTABLISHMENT).asc())
            .select(Store::as_select())
            .first(conn)
            .await
            .optional()?,
        Err(_) => None,
    };
    let own = match own {
        Some(s) => s,
        None => main_store(conn).await?,
    };
    let store = match requested {
        Some(r) if r != own.id && !is_admin => {
            return Err(StoreError::Forbidden(format!(
                "store_id {r} is not your store (you sell in store {}): only an admin may sell \
                 for another store",
                own.id
            )))
        }
        Some(r) if r != own.id => find_store(conn, &StoreKey::Id(r)).await?.ok_or_else(|| {
            invalid(
                "store_id",
                format!("no store with id {r} (GET /api/stores)"),
            )
        })?,
        _ => own,
    };
    if !store.active {
        return Err(StoreError::Conflict(format!(
            "store {} ({}) is disabled: it cannot sell. Enable it with PATCH /api/stores/{} \
             {{\"active\": true}} or `faena stores set {} --active true`",
            store.code, store.name, store.code, store.code
        )));
    }
    Ok(store)
}

/// Records the store of a sale just inserted, in the sale's transaction (which holds its series'
/// counter until it commits). The main store needs no statement: `sales.store_id` defaults to it
/// (the migration that made it set the default), so a one-store shop sells as fast as before.
pub async fn record_sale_store(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    store: &Store,
) -> Result<(), StoreError> {
    if store.is_main() {
        return Ok(());
    }
    diesel::update(sale_stores::table.find(sale_id))
        .set(sale_stores::store_id.eq(store.id))
        .execute(conn)
        .await?;
    Ok(())
}

/// The store a sale was made in.
pub async fn sale_store(conn: &mut AsyncPgConnection, sale_id: i64) -> Result<Store, StoreError> {
    sale_stores::table
        .inner_join(stores::table)
        .filter(sale_stores::id.eq(sale_id))
        .select(Store::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no sale {sale_id}")))
}

/// The id of the store a sale was made in (where its stock came from, and goes back to).
pub async fn sale_store_id(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
) -> Result<i64, diesel::result::Error> {
    sale_stores::table
        .find(sale_id)
        .select(sale_stores::store_id)
        .first(conn)
        .await
}

/// Puts a user in a store (`faena users create --store`, `faena users set-store`).
pub async fn set_user_store(
    conn: &mut AsyncPgConnection,
    username: &str,
    key: &StoreKey,
) -> Result<Store, StoreError> {
    let store = get_store(conn, key).await?;
    let n = diesel::update(users::table.filter(users::username.eq(username)))
        .set((
            users::store_id.eq(store.id),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("no user named `{username}`")));
    }
    Ok(store)
}

/// The store of each user, by user id.
pub async fn user_stores(
    conn: &mut AsyncPgConnection,
) -> Result<std::collections::HashMap<i64, String>, StoreError> {
    let rows: Vec<(i64, String)> = users::table
        .inner_join(stores::table)
        .select((users::id, stores::code))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// What the api did at start with a series setting (`FAENA_BOLETA_SERIES`,
/// `FAENA_FACTURA_SERIES`) and the main store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesSetting {
    /// The main store had issued nothing of the type: its series became the setting's.
    Adopted {
        variable: &'static str,
        from: String,
        to: String,
    },
    /// The main store already issued on its series: the setting, which differs, is not used.
    Ignored {
        variable: &'static str,
        setting: String,
        store_series: String,
        store_code: String,
    },
    /// The setting cannot be used (not a series of its type, or another store's).
    Refused {
        variable: &'static str,
        setting: String,
        reason: String,
    },
}

/// Applies the series settings to the main store (decision in `docs/decisions.md`): while the
/// main store has issued no receipt of a type, its series of that type follows the setting, so a
/// deployment configured with other series keeps them; once it issued, the store's series rules
/// and a differing setting is reported (change a store's series with `faena stores set`).
pub async fn adopt_series_settings(
    conn: &mut AsyncPgConnection,
    boleta: &str,
    factura: &str,
) -> Result<Vec<SeriesSetting>, StoreError> {
    adopt(
        conn,
        [
            (DocumentType::Boleta, false, "FAENA_BOLETA_SERIES", boleta),
            (
                DocumentType::Factura,
                false,
                "FAENA_FACTURA_SERIES",
                factura,
            ),
        ],
    )
    .await
}

/// [`adopt_series_settings`] for the note series (`FAENA_BOLETA_NOTE_SERIES`,
/// `FAENA_FACTURA_NOTE_SERIES`): while the main store has issued no credit note of a type, its
/// note series of that type follows the setting; once it did, the store's rules.
pub async fn adopt_note_series_settings(
    conn: &mut AsyncPgConnection,
    boleta_note: &str,
    factura_note: &str,
) -> Result<Vec<SeriesSetting>, StoreError> {
    adopt(
        conn,
        [
            (
                DocumentType::Boleta,
                true,
                "FAENA_BOLETA_NOTE_SERIES",
                boleta_note,
            ),
            (
                DocumentType::Factura,
                true,
                "FAENA_FACTURA_NOTE_SERIES",
                factura_note,
            ),
        ],
    )
    .await
}

/// Each setting `(doc, of notes, variable, value)` applied to the main store.
async fn adopt(
    conn: &mut AsyncPgConnection,
    settings: [(DocumentType, bool, &'static str, &str); 2],
) -> Result<Vec<SeriesSetting>, StoreError> {
    let mut out = Vec::new();
    for (doc, notes, variable, setting) in settings {
        let main = main_store(conn).await?;
        let current = match (doc, notes) {
            (DocumentType::Boleta, false) => main.boleta_series.clone(),
            (DocumentType::Factura, false) => main.factura_series.clone(),
            (DocumentType::Boleta, true) => main.boleta_note_series.clone(),
            (DocumentType::Factura, true) => main.factura_note_series.clone(),
        };
        let wanted = match Series::parse_for(setting, doc) {
            Ok(s) => s.as_str().to_owned(),
            Err(e) => {
                out.push(SeriesSetting::Refused {
                    variable,
                    setting: setting.to_owned(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if wanted == current {
            continue;
        }
        let issued = if notes {
            has_notes(conn, main.id, doc).await?
        } else {
            has_sales(conn, main.id, Some(doc)).await?
        };
        if issued {
            out.push(SeriesSetting::Ignored {
                variable,
                setting: wanted,
                store_series: current,
                store_code: main.code,
            });
            continue;
        }
        let patch = match (doc, notes) {
            (DocumentType::Boleta, false) => StorePatch {
                boleta_series: Some(wanted.clone()),
                ..Default::default()
            },
            (DocumentType::Factura, false) => StorePatch {
                factura_series: Some(wanted.clone()),
                ..Default::default()
            },
            (DocumentType::Boleta, true) => StorePatch {
                boleta_note_series: Some(wanted.clone()),
                ..Default::default()
            },
            (DocumentType::Factura, true) => StorePatch {
                factura_note_series: Some(wanted.clone()),
                ..Default::default()
            },
        };
        match update_store(conn, &StoreKey::Id(main.id), &patch).await {
            Ok(_) => out.push(SeriesSetting::Adopted {
                variable,
                from: current,
                to: wanted,
            }),
            Err(e @ (StoreError::Conflict(_) | StoreError::Invalid { .. })) => {
                out.push(SeriesSetting::Refused {
                    variable,
                    setting: wanted,
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
