//! The README stays true: every `faena ...` line of its code blocks is a command clap accepts,
//! with options its `--help` lists, every command is among them, and its settings table (and
//! `.env.example`) names exactly the variables the code reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(repo().join("README.md"))?)
}

/// The lines of the README's fenced code blocks, a line continued with `\` joined to the next,
/// without their `# comments`.
fn code_lines(readme: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            pending.clear();
            continue;
        }
        if !in_block {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                lines.push(strip_comment(&std::mem::take(&mut pending)));
            }
        }
    }
    lines
}

/// `line` without a `#` comment (a `#` after a space, outside quotes).
fn strip_comment(line: &str) -> String {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return line[..i].trim_end().to_owned(),
            _ => {}
        }
        prev = c;
    }
    line.trim_end().to_owned()
}

/// Words split on spaces, a quoted part kept whole.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                word.push(c);
            }
            (Some(q), _) if c == q => {
                quote = None;
                word.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// One form of a README command: the words that name the subcommand (and any positional values
/// written out, such as `admin`), and the options it shows.
#[derive(Debug)]
struct Form {
    line: String,
    path: Vec<String>,
    options: Vec<String>,
}

fn is_path_word(w: &str) -> bool {
    w.split('|').all(|part| {
        part.starts_with(|c: char| c.is_ascii_lowercase())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    })
}

/// Every form of every `faena` command of a line: `a|b` words expand, and the alternatives of
/// `faena users list | set-password NAME` share `faena users`.
fn forms(line: &str) -> Vec<Form> {
    let ws = words(line);
    let Some(start) = ws
        .iter()
        .position(|w| w == "faena" || w.ends_with("/faena"))
    else {
        return Vec::new();
    };
    // Segments split on a `|` outside brackets; a shell operator ends the command.
    let mut segments: Vec<Vec<String>> = vec![Vec::new()];
    let mut depth = 0i32;
    for w in &ws[start + 1..] {
        if depth == 0 && matches!(w.as_str(), ">" | ">>" | "<" | ";" | "&&" | "||" | "2>&1") {
            break;
        }
        if depth == 0 && w == "|" {
            segments.push(Vec::new());
            continue;
        }
        depth += w.matches(['[', '(']).count() as i32 - w.matches([']', ')']).count() as i32;
        if let Some(last) = segments.last_mut() {
            last.push(w.clone());
        }
    }
    let mut out = Vec::new();
    let mut parent: Vec<String> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let (seg, base) = match seg.first() {
            Some(w) if w == "faena" || w.ends_with("/faena") => (&seg[1..], Vec::new()),
            _ if i == 0 => (&seg[..], Vec::new()),
            _ => (&seg[..], parent.clone()),
        };
        let path_words: Vec<&String> = seg.iter().take_while(|w| is_path_word(w)).collect();
        let options: Vec<String> = seg
            .iter()
            .flat_map(|w| w.split('|'))
            .map(|w| w.trim_start_matches(['[', '(']))
            .filter(|w| w.starts_with("--"))
            .map(|w| {
                w.trim_end_matches([']', ')'])
                    .split('=')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        // `a|b` in the path: one form per choice.
        let mut paths: Vec<Vec<String>> = vec![base.clone()];
        for w in &path_words {
            paths = paths
                .into_iter()
                .flat_map(|p| {
                    w.split('|').map(move |choice| {
                        let mut p = p.clone();
                        p.push(choice.to_owned());
                        p
                    })
                })
                .collect();
        }
        if i == 0 {
            parent = base
                .iter()
                .cloned()
                .chain(path_words.iter().map(|w| (*w).clone()))
                .collect();
            parent.pop();
        }
        for path in paths {
            out.push(Form {
                line: line.to_owned(),
                path,
                options: options.clone(),
            });
        }
    }
    out
}

#[test]
fn the_extractor_reads_the_readmes_notation() {
    let got = |line: &str| -> Vec<(String, Vec<String>)> {
        forms(line)
            .into_iter()
            .map(|f| (f.path.join(" "), f.options))
            .collect()
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        got("faena users list | set-password NAME | set-role NAME --role R"),
        [
            ("users list".into(), s(&[])),
            ("users set-password".into(), s(&[])),
            ("users set-role".into(), s(&["--role"])),
        ]
    );
    assert_eq!(
        got("faena queue pause Q | faena queue resume Q"),
        [
            ("queue pause".into(), s(&[])),
            ("queue resume".into(), s(&[]))
        ]
    );
    assert_eq!(
        got("faena periodic set NAME (--cron EXPR | --every SECS) [--tz TZ]"),
        [("periodic set".into(), s(&["--cron", "--every", "--tz"]))]
    );
    assert_eq!(
        got("faena completions bash|zsh > ..."),
        [
            ("completions bash".into(), s(&[])),
            ("completions zsh".into(), s(&[]))
        ]
    );
    assert_eq!(
        got("target/release/faena users create admin --role admin"),
        [("users create admin".into(), s(&["--role"]))]
    );
    assert_eq!(
        code_lines("```sh\nfaena enqueue K [--args JSON] \\\n      [--queue Q]   # ids\n```\n"),
        ["faena enqueue K [--args JSON]        [--queue Q]"]
    );
    assert!(got("curl -s localhost:8080/api/health").is_empty());
}

#[test]
fn every_faena_command_line_in_the_readme_parses() -> anyhow::Result<()> {
    let readme = readme()?;
    let forms: Vec<Form> = code_lines(&readme).iter().flat_map(|l| forms(l)).collect();
    assert!(
        forms.len() >= 30,
        "the README's CLI section has more commands than {}: {forms:?}",
        forms.len()
    );
    let mut failures = Vec::new();
    for form in &forms {
        let o = Command::new(env!("CARGO_BIN_EXE_faena"))
            .args(&form.path)
            .arg("--help")
            .env_clear()
            .current_dir(std::env::temp_dir())
            .output()?;
        let help = String::from_utf8_lossy(&o.stdout);
        if !o.status.success() {
            failures.push(format!(
                "{}\n  `faena {} --help`: {}",
                form.line,
                form.path.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            continue;
        }
        for option in &form.options {
            let listed = help
                .split(|c: char| c.is_whitespace() || c == ',')
                .any(|w| w == option);
            if !listed {
                failures.push(format!(
                    "{}\n  `faena {} --help` lists no {option}",
                    form.line,
                    form.path.join(" ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // And the other way: every command of `faena` is in the README.
    let mut leaves = Vec::new();
    let mut stack = vec![(
        Vec::<String>::new(),
        <faena_cli::Cli as clap::CommandFactory>::command(),
    )];
    while let Some((path, cmd)) = stack.pop() {
        let subs: Vec<_> = cmd.get_subcommands().cloned().collect();
        if subs.is_empty() {
            leaves.push(path);
            continue;
        }
        for sub in subs {
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            stack.push((p, sub));
        }
    }
    let undocumented: Vec<String> = leaves
        .iter()
        .filter(|leaf| !forms.iter().any(|f| f.path.starts_with(leaf)))
        .map(|leaf| format!("faena {}", leaf.join(" ")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "commands missing from the README's code blocks: {undocumented:?}"
    );
    Ok(())
}

/// The variables named in the first column of the README's settings table.
fn readme_settings(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n## Settings")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned))
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

/// Every Rust source file of the workspace's crates (not their tests).
fn sources() -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("crates"))?
        .filter_map(Result::ok)
        .map(|e| e.path().join("src"))
        .collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p)?;
                out.push((p, text));
            }
        }
    }
    Ok(out)
}

/// The variables `settings.rs` reads: the name given to each `env.get|parsed|secs|days(...)`, a
/// literal or a `const` of the file.
fn read_settings(settings: &str) -> BTreeSet<String> {
    let code = settings.split("#[cfg(test)]").next().unwrap_or_default();
    let constant = |ident: &str| {
        code.split(&format!("const {ident}: &str = \""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
    };
    let mut names = BTreeSet::new();
    for call in ["env.get(", "env.parsed(", "env.secs(", "env.days("] {
        for rest in code.split(call).skip(1) {
            let arg = rest.trim_start();
            let name = match arg.strip_prefix('"') {
                Some(lit) => lit.split('"').next().map(str::to_owned),
                None => constant(
                    arg.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or_default(),
                ),
            };
            names.extend(name);
        }
    }
    names
}

#[test]
fn every_setting_listed_is_read_and_every_setting_read_is_listed() -> anyhow::Result<()> {
    let listed = readme_settings(&readme()?);
    assert!(
        listed.contains("DATABASE_URL") && listed.contains("TZ") && listed.len() >= 40,
        "{listed:?}"
    );
    let sources = sources()?;
    let unread: Vec<&String> = listed
        .iter()
        .filter(|name| {
            let literal = format!("\"{name}\"");
            !sources.iter().any(|(_, text)| text.contains(&literal))
        })
        .collect();
    assert!(
        unread.is_empty(),
        "the README's settings table lists variables no crate reads: {unread:?}"
    );

    let settings = std::fs::read_to_string(repo().join("crates/core/src/settings.rs"))?;
    let read = read_settings(&settings);
    assert!(
        read.contains("DATABASE_URL") && read.contains("FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS"),
        "{read:?}"
    );
    let missing: Vec<&String> = read.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "settings.rs reads variables the README's settings table does not list: {missing:?}"
    );

    // `.env.example`, which settings.rs also promises, sets or shows (commented out) each of them.
    let example = std::fs::read_to_string(repo().join(".env.example"))?;
    let shown: BTreeSet<String> = example
        .lines()
        .map(|l| l.trim_start_matches(['#', ' ']))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    let missing: Vec<&String> = read.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "settings.rs reads variables .env.example does not show: {missing:?}"
    );
    Ok(())
}
