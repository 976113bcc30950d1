//! URLs of the dependencies as the settings and the pools read them: passwords masked for logs and
//! errors, and the `redis+sentinel://` and `redis+cluster://` forms parsed once.

/// Sentinel's default port, used when a Sentinel address has none.
pub const SENTINEL_PORT: u16 = 26379;

/// The port of a cluster node when its address has none.
pub const REDIS_PORT: u16 = 6379;

/// Replaces the password of a URL with `***` so it can be logged or shown in an error.
pub fn mask_password(url: &str) -> String {
    if is_sentinel_url(url) || is_cluster_url(url) {
        return mask_sentinel_url(url);
    }
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".into(),
    }
}

/// The parts of a `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub tls: bool,
    /// The Sentinels' addresses, in the order given.
    pub sentinels: Vec<(String, u16)>,
    /// The monitored service's name (`mymaster`).
    pub service: String,
    pub db: i64,
    /// Credentials of the data nodes (the URL's user information).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Credentials of the Sentinels (`?sentinel_username=&sentinel_password=`).
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
}

/// True when `url` names Sentinels rather than one server.
pub fn is_sentinel_url(url: &str) -> bool {
    url.starts_with("redis+sentinel://") || url.starts_with("rediss+sentinel://")
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl SentinelUrl {
    /// Parses `redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/service[/db]
    /// [?sentinel_username=...&sentinel_password=...]`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("redis+sentinel://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("rediss+sentinel://") {
            (true, r)
        } else {
            return Err("a URL starting with redis+sentinel:// or rediss+sentinel://".into());
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| {
            "the Sentinel service name after the addresses, as in redis+sentinel://h1:26379,h2:26379/mymaster"
                .to_owned()
        })?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = parse_userinfo(userinfo);
        let sentinels = parse_hosts(hosts, SENTINEL_PORT, "Sentinel")?;
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let service = segments
            .next()
            .ok_or_else(|| "the Sentinel service name, as in .../mymaster".to_owned())?
            .to_owned();
        let db = match segments.next() {
            Some(d) => d
                .parse::<i64>()
                .map_err(|_| format!("a database number after the service name (got {d:?})"))?,
            None => 0,
        };
        if let Some(extra) = segments.next() {
            return Err(format!("nothing after the database number (got {extra:?})"));
        }
        let (mut sentinel_username, mut sentinel_password) = (None, None);
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "sentinel_username" => sentinel_username = Some(v.into_owned()),
                "sentinel_password" => sentinel_password = Some(v.into_owned()),
                other => {
                    return Err(format!(
                        "only sentinel_username and sentinel_password as query parameters (got {other:?})"
                    ))
                }
            }
        }
        Ok(SentinelUrl {
            tls,
            sentinels,
            service,
            db,
            username,
            password,
            sentinel_username,
            sentinel_password,
        })
    }
}

/// `user:password` of a URL's user information, decoded; an empty user is none.
fn parse_userinfo(userinfo: Option<&str>) -> (Option<String>, Option<String>) {
    match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (
                Some(decode(user)).filter(|s| !s.is_empty()),
                Some(decode(pass)),
            ),
            None => (Some(decode(u)).filter(|s| !s.is_empty()), None),
        },
    }
}

/// `host[:port],host[:port]...` with `default_port` where a port is missing; `what` names the
/// servers in the error.
fn parse_hosts(hosts: &str, default_port: u16, what: &str) -> Result<Vec<(String, u16)>, String> {
    let mut out = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(format!(
                "at least one {what} address (host:port), separated by commas"
            ));
        }
        let (name, port) = match host.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("a port number after {h}: (got {p:?})"))?,
            ),
            None => (host, default_port),
        };
        if name.is_empty() {
            return Err(format!("a host before :{port}"));
        }
        out.push((name.trim_matches(['[', ']']).to_owned(), port));
    }
    Ok(out)
}

/// The parts of a `redis+cluster://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub tls: bool,
    /// Some of the cluster's nodes (the client learns the others from them), in the order given.
    pub nodes: Vec<(String, u16)>,
    /// Credentials of the nodes: the URL's user information, or `?username=&password=`.
    pub username: Option<String>,
    pub password: Option<String>,
}

/// True when `url` names the nodes of a Redis Cluster.
pub fn is_cluster_url(url: &str) -> bool {
    url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://")
}

impl ClusterUrl {
    /// Parses `redis+cluster://[user[:password]@]host[:port][,host[:port]...][/][?username=...&password=...]`
    /// (`rediss+cluster://` for TLS); the error says what is wrong. A cluster has one database, so
    /// no database number (or only `/0`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("redis+cluster://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("rediss+cluster://") {
            (true, r)
        } else {
            return Err("a URL starting with redis+cluster:// or rediss+cluster://".into());
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        if !matches!(path, "" | "0") {
            return Err(format!(
                "no database number other than 0 after the nodes: a Redis Cluster has one database (got {path:?})"
            ));
        }
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (mut username, mut password) = parse_userinfo(userinfo);
        let nodes = parse_hosts(hosts, REDIS_PORT, "cluster node")?;
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "username" => username = Some(v.into_owned()).filter(|s| !s.is_empty()),
                "password" => password = Some(v.into_owned()),
                other => {
                    return Err(format!(
                        "only username and password as query parameters (got {other:?})"
                    ))
                }
            }
        }
        Ok(ClusterUrl {
            tls,
            nodes,
            username,
            password,
        })
    }
}

/// `url` (a `redis+sentinel://` or `redis+cluster://` one) with its passwords replaced by `***`,
/// for logs and errors.
pub fn mask_sentinel_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable URL>".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, hosts)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{hosts}"),
            None => format!("{user}@{hosts}"),
        },
        None => authority.to_owned(),
    };
    let masked_rest = match path {
        Some(p) => format!("{authority}/{p}"),
        None => authority,
    };
    let masked_query = query.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| {
                if k.contains("password") {
                    format!("{k}=***")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match masked_query {
        Some(q) => format!("{scheme}://{masked_rest}?{q}"),
        None => format!("{scheme}://{masked_rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_its_sentinels_service_db_and_both_passwords() {
        let u = SentinelUrl::parse(
            "redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2,sent3:26380/mymaster/2?sentinel_password=sp",
        )
        .expect("valid");
        assert!(!u.tls);
        assert_eq!(
            u.sentinels,
            vec![
                ("10.0.0.1".to_owned(), 26379),
                ("10.0.0.2".to_owned(), SENTINEL_PORT),
                ("sent3".to_owned(), 26380)
            ]
        );
        assert_eq!(u.service, "mymaster");
        assert_eq!(u.db, 2);
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.sentinel_password.as_deref(), Some("sp"));
        assert!(
            SentinelUrl::parse("rediss+sentinel://h/m")
                .expect("tls")
                .tls
        );
    }

    #[test]
    fn a_bad_sentinel_url_says_what_is_missing() {
        let no_service = SentinelUrl::parse("redis+sentinel://h1:26379").unwrap_err();
        assert!(no_service.contains("service name"), "{no_service}");
        let bad_port = SentinelUrl::parse("redis+sentinel://h1:x/m").unwrap_err();
        assert!(bad_port.contains("port"), "{bad_port}");
        let bad_db = SentinelUrl::parse("redis+sentinel://h1/m/zero").unwrap_err();
        assert!(bad_db.contains("database number"), "{bad_db}");
        let empty = SentinelUrl::parse("redis+sentinel://h1,,h2/m").unwrap_err();
        assert!(empty.contains("Sentinel address"), "{empty}");
        let unknown = SentinelUrl::parse("redis+sentinel://h1/m?tls=yes").unwrap_err();
        assert!(unknown.contains("query parameters"), "{unknown}");
    }

    #[test]
    fn masking_hides_both_passwords() {
        let m = mask_sentinel_url(
            "redis+sentinel://app:hunter2@h1:26379,h2/m?sentinel_password=hunter3",
        );
        assert!(!m.contains("hunter2") && !m.contains("hunter3"), "{m}");
        assert!(m.contains("h1:26379,h2/m"), "{m}");
        let no_path = mask_sentinel_url("redis+sentinel://:hunter2@h1:26379");
        assert!(
            !no_path.contains("hunter2") && no_path.contains("h1:26379"),
            "{no_path}"
        );
    }
    #[test]
    fn a_cluster_url_names_its_nodes_and_credentials() {
        let u = ClusterUrl::parse("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,n3:7002")
            .expect("valid");
        assert!(!u.tls);
        assert_eq!(
            u.nodes,
            vec![
                ("10.0.0.1".to_owned(), 7000),
                ("10.0.0.2".to_owned(), REDIS_PORT),
                ("n3".to_owned(), 7002)
            ]
        );
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        let q = ClusterUrl::parse("rediss+cluster://h1:7000,h2:7001/?password=pw").expect("query");
        assert!(q.tls);
        assert_eq!(q.password.as_deref(), Some("pw"));
        assert_eq!(q.username, None);
        assert_eq!(q.nodes.len(), 2);
    }

    #[test]
    fn a_bad_cluster_url_says_what_is_wrong() {
        let db = ClusterUrl::parse("redis+cluster://h1:7000/3").unwrap_err();
        assert!(db.contains("one database"), "{db}");
        let port = ClusterUrl::parse("redis+cluster://h1:x").unwrap_err();
        assert!(port.contains("port"), "{port}");
        let empty = ClusterUrl::parse("redis+cluster://h1,,h2").unwrap_err();
        assert!(empty.contains("cluster node address"), "{empty}");
        let unknown = ClusterUrl::parse("redis+cluster://h1?tls=yes").unwrap_err();
        assert!(unknown.contains("query parameters"), "{unknown}");
        let m = mask_password("redis+cluster://:hunter2@h1:7000,h2:7001?password=hunter3");
        assert!(!m.contains("hunter2") && !m.contains("hunter3"), "{m}");
        assert!(m.contains("h1:7000,h2:7001"), "{m}");
    }
}
