//! UWS 1.1 XML documents (namespace `http://www.ivoa.net/xml/UWS/v1.0`, which is the UWS 1.1
//! schema's), with elements in the order the schema's sequences require.

use std::fmt::Write;

use super::{Job, JobRef, format_time};

const HEADER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const NAMESPACES: &str = "xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
     xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
     xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";

/// Escapes text for element content and attribute values; characters XML 1.0 cannot carry
/// become U+FFFD.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Keep line ends and tabs as character references so that attribute values
            // survive normalisation.
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn time_element(out: &mut String, name: &str, t: Option<&chrono::DateTime<chrono::Utc>>) {
    match t {
        Some(t) => {
            let _ = writeln!(out, "  <uws:{name}>{}</uws:{name}>", format_time(t));
        }
        None => {
            let _ = writeln!(out, "  <uws:{name} xsi:nil=\"true\"/>");
        }
    }
}

fn owner_element(out: &mut String, indent: &str, owner: Option<&str>) {
    match owner {
        Some(o) => {
            let _ = writeln!(out, "{indent}<uws:ownerId>{}</uws:ownerId>", esc(o));
        }
        None => {
            let _ = writeln!(out, "{indent}<uws:ownerId xsi:nil=\"true\"/>");
        }
    }
}

/// The `<uws:job>` document; `job_url` is the job's absolute URL.
pub(super) fn job_document(job: &Job, job_url: &str) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str(HEADER);
    let _ = writeln!(out, "<uws:job {NAMESPACES} version=\"1.1\">");
    let _ = writeln!(out, "  <uws:jobId>{}</uws:jobId>", esc(&job.id));
    if let Some(r) = &job.run_id {
        let _ = writeln!(out, "  <uws:runId>{}</uws:runId>", esc(r));
    }
    owner_element(&mut out, "  ", job.owner.as_deref());
    let _ = writeln!(out, "  <uws:phase>{}</uws:phase>", job.phase);
    time_element(&mut out, "quote", job.quote.as_ref());
    let _ = writeln!(
        out,
        "  <uws:creationTime>{}</uws:creationTime>",
        format_time(&job.creation_time)
    );
    time_element(&mut out, "startTime", job.start_time.as_ref());
    time_element(&mut out, "endTime", job.end_time.as_ref());
    let _ = writeln!(
        out,
        "  <uws:executionDuration>{}</uws:executionDuration>",
        job.execution_duration.min(i32::MAX as u64)
    );
    time_element(&mut out, "destruction", Some(&job.destruction));
    parameters_element(&mut out, job, "  ");
    results_element(&mut out, job, job_url, "  ");
    if let Some(e) = &job.error {
        let _ = writeln!(
            out,
            "  <uws:errorSummary type=\"{}\" hasDetail=\"true\">\n    <uws:message>{}</uws:message>\n  </uws:errorSummary>",
            if e.fatal { "fatal" } else { "transient" },
            esc(&e.message)
        );
    }
    out.push_str("</uws:job>\n");
    out
}

fn parameters_element(out: &mut String, job: &Job, indent: &str) {
    if job.parameters.is_empty() {
        let _ = writeln!(out, "{indent}<uws:parameters/>");
        return;
    }
    let _ = writeln!(out, "{indent}<uws:parameters>");
    for (k, v) in &job.parameters {
        let _ = writeln!(
            out,
            "{indent}  <uws:parameter id=\"{}\">{}</uws:parameter>",
            esc(k),
            esc(v)
        );
    }
    let _ = writeln!(out, "{indent}</uws:parameters>");
}

fn results_element(out: &mut String, job: &Job, job_url: &str, indent: &str) {
    if job.results.is_empty() {
        let _ = writeln!(out, "{indent}<uws:results/>");
        return;
    }
    let _ = writeln!(out, "{indent}<uws:results>");
    for r in &job.results {
        let href = format!("{job_url}/results/{}", r.id);
        let _ = write!(
            out,
            "{indent}  <uws:result id=\"{}\" xlink:href=\"{}\"",
            esc(&r.id),
            esc(&href)
        );
        if let Some(size) = r.size {
            let _ = write!(out, " size=\"{size}\"");
        }
        let _ = writeln!(out, " mime-type=\"{}\"/>", esc(&r.mime));
    }
    let _ = writeln!(out, "{indent}</uws:results>");
}

/// The `<uws:parameters>` document.
pub(super) fn parameters_document(job: &Job) -> String {
    let mut out = String::from(HEADER);
    let mut inner = String::new();
    parameters_element(&mut inner, job, "");
    // The root element carries the namespace declarations.
    out.push_str(&inner.replacen(
        "<uws:parameters",
        &format!("<uws:parameters {NAMESPACES}"),
        1,
    ));
    out
}

/// The `<uws:results>` document.
pub(super) fn results_document(job: &Job, job_url: &str) -> String {
    let mut out = String::from(HEADER);
    let mut inner = String::new();
    results_element(&mut inner, job, job_url, "");
    out.push_str(&inner.replacen("<uws:results", &format!("<uws:results {NAMESPACES}"), 1));
    out
}

/// The `<uws:jobs>` list; `list_url` is the job list's absolute URL.
pub(super) fn job_list(jobs: &[JobRef], list_url: &str) -> String {
    let mut out = String::with_capacity(256 + jobs.len() * 320);
    out.push_str(HEADER);
    let _ = writeln!(out, "<uws:jobs {NAMESPACES} version=\"1.1\">");
    for j in jobs {
        let _ = writeln!(
            out,
            "  <uws:jobref id=\"{}\" xlink:href=\"{}/{}\">",
            esc(&j.id),
            esc(list_url),
            esc(&j.id)
        );
        let _ = writeln!(out, "    <uws:phase>{}</uws:phase>", j.phase);
        if let Some(r) = &j.run_id {
            let _ = writeln!(out, "    <uws:runId>{}</uws:runId>", esc(r));
        }
        owner_element(&mut out, "    ", j.owner.as_deref());
        let _ = writeln!(
            out,
            "    <uws:creationTime>{}</uws:creationTime>",
            format_time(&j.creation_time)
        );
        out.push_str("  </uws:jobref>\n");
    }
    out.push_str("</uws:jobs>\n");
    out
}
