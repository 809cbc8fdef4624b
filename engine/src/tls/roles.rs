//! Who may do what over TCP. A client's role is a field of its certificate's subject (the
//! organizational unit, OU, unless `tls-role-field` names O or CN): `admin`, `operator` or
//! `viewer`. A certificate without one, and an anonymous client (`tls` without `tlsverify`),
//! is a viewer: safe by default. Operators may exec only when `tls-operator-exec` grants it.
//! The unix socket is not subject to roles (its mode and group guard it).

use hyper::Method;

/// Which subject field carries the role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoleField {
    #[default]
    OrganizationalUnit,
    Organization,
    CommonName,
}

impl RoleField {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "OU" => Some(RoleField::OrganizationalUnit),
            "O" => Some(RoleField::Organization),
            "CN" => Some(RoleField::CommonName),
            _ => None,
        }
    }
}

/// How roles are read and what they grant beyond the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub field: RoleField,
    /// Operators may run `exec` in existing containers.
    pub operator_exec: bool,
}

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
    pub fn allows(self, method: &Method, segs: &[&str], policy: &Policy) -> bool {
        if self == Role::Operator && policy.operator_exec && exec(method, segs) {
            return true;
        }
        self.allows_by_default(method, segs)
    }

    fn allows_by_default(self, method: &Method, segs: &[&str]) -> bool {
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

/// Creating and running exec instances (and resizing their terminals).
fn exec(method: &Method, segs: &[&str]) -> bool {
    *method == Method::POST && matches!(segs, ["containers", _, "exec"] | ["exec", _, "start" | "resize"])
}

/// The role (from `field`) and the subject (for the audit trail) of a client certificate.
pub fn of_certificate(der: &[u8], field: RoleField) -> (Role, String) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return (Role::Viewer, "unreadable certificate".into()) };
    let subject = cert.subject();
    let values: Vec<&str> = match field {
        RoleField::OrganizationalUnit => subject.iter_organizational_unit().filter_map(|a| a.as_str().ok()).collect(),
        RoleField::Organization => subject.iter_organization().filter_map(|a| a.as_str().ok()).collect(),
        RoleField::CommonName => subject.iter_common_name().filter_map(|a| a.as_str().ok()).collect(),
    };
    let role = values.into_iter().find_map(Role::parse).unwrap_or(Role::Viewer);
    (role, subject.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_they_say() {
        let get = Method::GET;
        let post = Method::POST;
        let p = Policy::default();
        let granted = Policy { operator_exec: true, ..Policy::default() };
        assert!(!Role::Operator.allows(&post, &["exec", "x", "start"], &p));
        assert!(Role::Operator.allows(&post, &["containers", "x", "exec"], &granted));
        assert!(Role::Operator.allows(&post, &["exec", "x", "start"], &granted));
        assert!(!Role::Viewer.allows(&post, &["containers", "x", "exec"], &granted));
        assert!(!Role::Operator.allows(&post, &["containers", "create"], &granted));
        assert_eq!(RoleField::parse("cn"), Some(RoleField::CommonName));
        assert_eq!(RoleField::parse("email"), None);
        assert!(Role::Viewer.allows(&get, &["containers", "json"], &p));
        assert!(Role::Viewer.allows(&post, &["containers", "x", "wait"], &p));
        assert!(!Role::Viewer.allows(&post, &["containers", "create"], &p));
        assert!(!Role::Viewer.allows(&post, &["containers", "x", "start"], &p));
        assert!(Role::Operator.allows(&post, &["containers", "x", "restart"], &p));
        assert!(!Role::Operator.allows(&post, &["containers", "x", "exec"], &p));
        assert!(!Role::Operator.allows(&Method::DELETE, &["containers", "x"], &p));
        assert!(!Role::Operator.allows(&post, &["images", "create"], &p));
        assert!(Role::Admin.allows(&Method::DELETE, &["images", "x"], &p));
    }
}
