//! Canonical XML 1.0 (inclusive, without comments: `http://www.w3.org/TR/2001/REC-xml-c14n-20010315`)
//! over a parsed `roxmltree` document, for the two node sets XMLDSig needs: the whole document
//! minus one subtree (the enveloped-signature transform) and one element's subtree (`SignedInfo`,
//! canonicalized in the context of its document).

use std::collections::BTreeMap;

use roxmltree::{Node, NodeId, NodeType};

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// The prefix -> URI bindings already rendered by output ancestors ("" is the default namespace).
type Rendered = BTreeMap<String, String>;

/// The whole document, leaving out the subtree rooted at `exclude` (if any).
pub(crate) fn document(doc: &roxmltree::Document<'_>, exclude: Option<NodeId>) -> String {
    let mut out = String::with_capacity(doc.input_text().len());
    let root = doc.root();
    let mut seen_element = false;
    for child in root.children() {
        match child.node_type() {
            NodeType::Element => {
                seen_element = true;
                element(child, &mut out, &Rendered::new(), false, exclude);
            }
            NodeType::PI => {
                if seen_element {
                    out.push('\n');
                }
                pi(child, &mut out);
                if !seen_element {
                    out.push('\n');
                }
            }
            // Comments are left out, text outside the root element is only whitespace.
            _ => {}
        }
    }
    out
}

/// The subtree of `node` (an element), with the namespaces and `xml:*` attributes it inherits.
pub(crate) fn subtree(node: Node<'_, '_>) -> String {
    let mut out = String::new();
    element(node, &mut out, &Rendered::new(), true, None);
    out
}

fn element(
    node: Node<'_, '_>,
    out: &mut String,
    parent_rendered: &Rendered,
    apex: bool,
    exclude: Option<NodeId>,
) {
    if Some(node.id()) == exclude {
        return;
    }
    let qname = element_qname(node);
    out.push('<');
    out.push_str(qname);

    // Namespace axis: every in-scope binding not already rendered with the same value.
    let mut in_scope: BTreeMap<String, String> = BTreeMap::new();
    for ns in node.namespaces() {
        let prefix = ns.name().unwrap_or("");
        if prefix == "xml" {
            continue;
        }
        in_scope.insert(prefix.to_owned(), ns.uri().to_owned());
    }
    let mut rendered = parent_rendered.clone();
    // BTreeMap order puts "" (the default namespace) first, then prefixes in order.
    let default_uri = in_scope.get("").map(String::as_str).unwrap_or("");
    let parent_default = parent_rendered.get("").map(String::as_str).unwrap_or("");
    if default_uri != parent_default {
        push_attr(out, "xmlns", default_uri);
        rendered.insert(String::new(), default_uri.to_owned());
    }
    for (prefix, uri) in in_scope.iter().filter(|(p, _)| !p.is_empty()) {
        if parent_rendered.get(prefix) != Some(uri) {
            push_attr(out, &format!("xmlns:{prefix}"), uri);
            rendered.insert(prefix.clone(), uri.clone());
        }
    }

    // Attributes, sorted by namespace URI then local name; the apex of a subset also carries
    // the `xml:*` attributes of its ancestors that it does not override.
    let input = node.document().input_text();
    let mut attrs: Vec<(String, String, String, String)> = node
        .attributes()
        .map(|a| {
            let ns = a.namespace().unwrap_or("").to_owned();
            let qname = input
                .get(a.range_qname())
                .unwrap_or_else(|| a.name())
                .to_owned();
            (ns, a.name().to_owned(), qname, a.value().to_owned())
        })
        .collect();
    if apex {
        for anc in node.ancestors().skip(1).filter(|n| n.is_element()) {
            for a in anc.attributes() {
                if a.namespace() == Some(XML_NS)
                    && !attrs
                        .iter()
                        .any(|(ns, local, _, _)| ns == XML_NS && local == a.name())
                {
                    attrs.push((
                        XML_NS.to_owned(),
                        a.name().to_owned(),
                        format!("xml:{}", a.name()),
                        a.value().to_owned(),
                    ));
                }
            }
        }
    }
    attrs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (_, _, qname, value) in &attrs {
        push_attr(out, qname, value);
    }
    out.push('>');

    for child in node.children() {
        match child.node_type() {
            NodeType::Element => element(child, out, &rendered, false, exclude),
            NodeType::Text => push_text(out, child.text().unwrap_or("")),
            NodeType::PI => pi(child, out),
            _ => {}
        }
    }
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

/// The element's qualified name as written in the source (`ext:ExtensionContent`, `Invoice`).
fn element_qname<'i>(node: Node<'_, 'i>) -> &'i str {
    let input = node.document().input_text();
    let start = node.range().start + 1;
    let rest = input.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

fn pi(node: Node<'_, '_>, out: &mut String) {
    if let Some(pi) = node.pi() {
        out.push_str("<?");
        out.push_str(pi.target);
        if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
            out.push(' ');
            out.push_str(value);
        }
        out.push_str("?>");
    }
}

fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_of_the_spec_examples() {
        // Adapted from the C14N 1.0 spec, section 3.3 (start and end tags).
        let input = r#"<?xml version="1.0"?>
<!-- comment -->
<doc xmlns="http://example.org/">
   <e1   />
   <e2   ></e2>
   <e3   name = "elem3"   id="elem3"   />
   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I'm"
      xmlns:b="http://www.ietf.org"
      xmlns:a="http://www.w3.org"
      xmlns="http://example.org"/>
   <e6 xmlns="" xmlns:a="http://www.w3.org">&amp;&lt;&gt;"</e6>
</doc>"#;
        let doc = roxmltree::Document::parse(input).unwrap();
        let expected = r#"<doc xmlns="http://example.org/">
   <e1></e1>
   <e2></e2>
   <e3 id="elem3" name="elem3"></e3>
   <e5 xmlns="http://example.org" xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>
   <e6 xmlns="" xmlns:a="http://www.w3.org">&amp;&lt;&gt;"</e6>
</doc>"#;
        assert_eq!(document(&doc, None), expected);
    }

    #[test]
    fn subtree_inherits_namespaces() {
        let input = r#"<r xmlns="urn:r" xmlns:a="urn:a" xml:lang="es"><a:x><a:y k="v"/></a:x></r>"#;
        let doc = roxmltree::Document::parse(input).unwrap();
        let y = doc
            .descendants()
            .find(|n| n.has_tag_name(("urn:a", "y")))
            .unwrap();
        assert_eq!(
            subtree(y),
            r#"<a:y xmlns="urn:r" xmlns:a="urn:a" k="v" xml:lang="es"></a:y>"#
        );
    }
}
