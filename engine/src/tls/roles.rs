//! Who may do what over TCP. A client's role is the organizational unit (OU) of its
//! certificate's subject: `admin`, `operator` or `viewer`. A certificate without one, and an
//! anonymous client (`tls` without `tlsverify`), is a viewer: safe by default. The unix
//! socket is not subject to roles (its mode and group guard it).

use hyper::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// May this role make the request (`segs`: the path after the version, split)?
    pub fn allows(self, method: &Method, segs: &[&str]) -> bool {
        // Who did what is for administrators only.
        if matches!(segs, ["system", "audit"]) {
            return self == Role::Admin;
        }
        match self {
            Role::Admin => true,
            Role::Viewer => reads(method, segs),
            Role::Operator => reads(method, segs) || lifecycle(method, segs),
        }
    }
}

/// Requests that change nothing. `POST /containers/{id}/wait` only waits.
fn reads(method: &Method, segs: &[&str]) -> bool {
    *method == Method::GET || *method == Method::HEAD || (*method == Method::POST && matches!(segs, ["containers", _, "wait"]))
}

/// What an operator may do to containers that exist: no create, no removal, no exec.
fn lifecycle(method: &Method, segs: &[&str]) -> bool {
    *method == Method::POST
        && matches!(segs, ["containers", _, "start" | "stop" | "restart" | "kill" | "pause" | "unpause" | "attach" | "resize"])
}

/// The role and the subject (for the audit trail) of a client certificate.
pub fn of_certificate(der: &[u8]) -> (Role, String) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return (Role::Viewer, "unreadable certificate".into()) };
    let subject = cert.subject();
    let role = subject.iter_organizational_unit().filter_map(|ou| ou.as_str().ok()).find_map(Role::parse).unwrap_or(Role::Viewer);
    (role, subject.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_they_say() {
        let get = Method::GET;
        let post = Method::POST;
        assert!(Role::Viewer.allows(&get, &["containers", "json"]));
        assert!(Role::Viewer.allows(&post, &["containers", "x", "wait"]));
        assert!(!Role::Viewer.allows(&post, &["containers", "create"]));
        assert!(!Role::Viewer.allows(&post, &["containers", "x", "start"]));
        assert!(Role::Operator.allows(&post, &["containers", "x", "restart"]));
        assert!(!Role::Operator.allows(&post, &["containers", "x", "exec"]));
        assert!(!Role::Operator.allows(&Method::DELETE, &["containers", "x"]));
        assert!(!Role::Operator.allows(&post, &["images", "create"]));
        assert!(Role::Admin.allows(&Method::DELETE, &["images", "x"]));
    }
}
