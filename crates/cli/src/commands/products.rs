//! Products: `faena products list|add|set` with the same checks as the api (the catálogo 07
//! affectation, the catálogo 03 unit, ICBPER, decimal quantities), and the stock per store
//! (`list --store`, `set --stock N --store CODE`). Messages about the shop's
//! products are in Spanish, for the shop's staff.

use std::io::Write;

use bigdecimal::BigDecimal;
use clap::{Args, Subcommand};

use super::common::{pg, print_json, say, CliSettings};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum ProductsCommand {
    /// Products by id: sku, name, price, stock with its unit (in all and per store), how they
    /// are taxed.
    List {
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Only this store's stock (its code or id).
        #[arg(long)]
        store: Option<String>,
    },
    /// Add a product: `faena products add ARR-G --name "Arroz a granel" --price 4.20 --stock
    /// 25.000 --unit-code KGM --decimal-quantity`.
    Add(AddProduct),
    /// Change a product; options not given stay as they are.
    Set(SetProduct),
}

#[derive(Debug, Args)]
pub struct AddProduct {
    /// Its code (1 to 64 characters), unique.
    pub sku: String,
    #[arg(long)]
    pub name: String,
    /// Price with taxes, from 0.01, 2 decimals (4.20).
    #[arg(long)]
    pub price: String,
    /// Stock: whole, or up to 3 decimals with --decimal-quantity (25.500).
    #[arg(long)]
    pub stock: String,
    /// An alert opens at or below it (default 5).
    #[arg(long, default_value = "5")]
    pub threshold: String,
    /// Catálogo 07: 10 gravado (default), 20 exonerado, 30 inafecto, 11-16, 21, 31-37 gratuito.
    #[arg(long, default_value = "10")]
    pub igv_affectation: String,
    /// Catálogo 03: NIU (default), KGM, LTR, ZZ, ...
    #[arg(long, default_value = "NIU")]
    pub unit_code: String,
    /// A plastic bag: each one sold carries ICBPER.
    #[arg(long)]
    pub icbper: bool,
    /// Sold by weight or measure: quantities with up to 3 decimals.
    #[arg(long)]
    pub decimal_quantity: bool,
}

#[derive(Debug, Args)]
pub struct SetProduct {
    pub id: i64,
    #[arg(long)]
    pub name: Option<String>,
    /// Price with taxes, from 0.01, 2 decimals.
    #[arg(long)]
    pub price: Option<String>,
    #[arg(long)]
    pub threshold: Option<String>,
    /// Catálogo 07 code.
    #[arg(long)]
    pub igv_affectation: Option<String>,
    /// Catálogo 03 code.
    #[arg(long)]
    pub unit_code: Option<String>,
    #[arg(long, value_name = "true|false")]
    pub icbper: Option<bool>,
    /// Off is refused while the stock or an ACTIVE reservation has decimals.
    #[arg(long, value_name = "true|false")]
    pub decimal_quantity: Option<bool>,
    /// The stock of the store --store (the main store by default) from now on.
    #[arg(long)]
    pub stock: Option<String>,
    /// The store whose --stock is set (its code or id); the main store by default.
    #[arg(long, requires = "stock")]
    pub store: Option<String>,
}

/// The option of a product field, as the error names it.
fn option_of(field: &str) -> String {
    match field {
        "sku" => "SKU".to_owned(),
        "unit_price" => "--price".to_owned(),
        "low_stock_threshold" => "--threshold".to_owned(),
        "store_id" => "--store".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

fn price(text: &str) -> Result<BigDecimal, String> {
    text.parse()
        .map_err(|_| format!("--price: {text:?} no es un precio: escriba 4.20 (2 decimales)"))
}

fn quantity(option: &str, text: &str) -> Result<BigDecimal, String> {
    faena_shop::quantity::parse_decimal(text).map_err(|e| format!("{option}: {e}"))
}

/// One line about a product, in Spanish.
fn describe(p: &faena_shop::shop::Product) -> String {
    use faena_shop::{money, quantity};
    let base = match p.igv_affectation.as_str() {
        "10" => "gravado",
        "20" => "exonerado",
        "30" => "inafecto",
        _ => "gratuito",
    };
    let mut marks = vec![format!("{base} ({})", p.igv_affectation)];
    if p.decimal_quantity {
        marks.push("por peso o medida".to_owned());
    }
    if p.icbper {
        marks.push("bolsa con ICBPER".to_owned());
    }
    let stores: Vec<String> = p
        .by_store
        .iter()
        .map(|s| format!("{} {}", s.store_code, quantity::format(&s.stock)))
        .collect();
    let stores = if stores.is_empty() {
        "ninguna tienda".to_owned()
    } else {
        stores.join(", ")
    };
    format!(
        "producto {} ({}) {}: S/ {}, stock {} {} ({stores}), {}",
        p.id,
        p.sku,
        p.name,
        money::format(&p.unit_price),
        quantity::format(&p.stock),
        p.unit_code,
        marks.join(", ")
    )
}

/// A store named by code or id on the command line; the error names `--store`.
fn store_key(text: &str) -> Result<faena_shop::stores::StoreKey, String> {
    faena_shop::stores::StoreKey::parse("--store", text).map_err(|e| match e {
        faena_shop::stores::StoreError::Invalid { message, .. } => format!("--store: {message}"),
        other => other.to_string(),
    })
}

/// `faena products ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: ProductsCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_shop::shop::{self, NewProduct, ProductPatch, ShopError};
    let mut conn = pg(settings).await?;
    let result = match command {
        ProductsCommand::List { limit, store } => {
            let store = match store.as_deref().map(store_key).transpose() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::USAGE);
                }
            };
            let products =
                match shop::list_products(&mut conn, limit.clamp(1, 1000), store.as_ref()).await {
                    Ok(p) => p,
                    Err(e @ ShopError::Store(_)) => {
                        eprintln!("faena: {e}");
                        return Ok(exit::FAILED);
                    }
                    Err(e) => return Err(e.into()),
                };
            if json {
                print_json(out, &products)?;
            } else if products.is_empty() {
                writeln!(out, "no hay productos")?;
            } else {
                for p in &products {
                    writeln!(out, "{}", describe(p))?;
                }
            }
            return Ok(exit::OK);
        }
        ProductsCommand::Add(a) => {
            let parsed = price(&a.price).and_then(|price| {
                Ok((
                    price,
                    quantity("--stock", &a.stock)?,
                    quantity("--threshold", &a.threshold)?,
                ))
            });
            let (unit_price, stock, low_stock_threshold) = match parsed {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::USAGE);
                }
            };
            let new = NewProduct {
                sku: a.sku,
                name: a.name,
                unit_price,
                stock,
                low_stock_threshold,
                igv_affectation: a.igv_affectation,
                unit_code: a.unit_code,
                icbper: a.icbper,
                decimal_quantity: a.decimal_quantity,
            };
            shop::create_product(&mut conn, new).await
        }
        ProductsCommand::Set(s) => {
            let parsed = (|| {
                Ok::<_, String>((
                    s.price.as_deref().map(price).transpose()?,
                    s.threshold
                        .as_deref()
                        .map(|t| quantity("--threshold", t))
                        .transpose()?,
                    s.stock
                        .as_deref()
                        .map(|t| quantity("--stock", t))
                        .transpose()?,
                    s.store.as_deref().map(store_key).transpose()?,
                ))
            })();
            let (unit_price, low_stock_threshold, stock, store) = match parsed {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::USAGE);
                }
            };
            let patch = ProductPatch {
                name: s.name,
                unit_price,
                low_stock_threshold,
                igv_affectation: s.igv_affectation,
                unit_code: s.unit_code,
                icbper: s.icbper,
                decimal_quantity: s.decimal_quantity,
                stock,
                store_id: None,
                expected_version: None,
            };
            // A store named by its code is looked up here; the shop checks an id.
            let patch = match store {
                Some(faena_shop::stores::StoreKey::Id(id)) => ProductPatch {
                    store_id: Some(id),
                    ..patch
                },
                Some(key) => match faena_shop::stores::get_store(&mut conn, &key).await {
                    Ok(store) => ProductPatch {
                        store_id: Some(store.id),
                        ..patch
                    },
                    Err(e) => {
                        eprintln!("faena: {e}");
                        return Ok(exit::FAILED);
                    }
                },
                None => patch,
            };
            shop::update_product(&mut conn, s.id, patch).await
        }
    };
    match result {
        Ok(p) => {
            say(out, json, describe(&p), serde_json::to_value(&p)?)?;
            Ok(exit::OK)
        }
        Err(ShopError::Invalid { field, message }) => {
            eprintln!("faena: {}: {message}", option_of(&field));
            Ok(exit::USAGE)
        }
        Err(
            e @ (ShopError::NotFound { .. }
            | ShopError::SkuExists(_)
            | ShopError::DecimalStock { .. }
            | ShopError::Store(_)
            | ShopError::VersionConflict { .. }),
        ) => {
            eprintln!("faena: {e}");
            Ok(exit::FAILED)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_by_their_options() {
        assert_eq!(option_of("unit_price"), "--price");
        assert_eq!(option_of("igv_affectation"), "--igv-affectation");
        assert_eq!(option_of("decimal_quantity"), "--decimal-quantity");
        assert_eq!(option_of("low_stock_threshold"), "--threshold");
        assert_eq!(option_of("sku"), "SKU");
    }
}
