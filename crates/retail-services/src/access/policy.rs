//! Roles and permissions: deny unless a role permits both the permission and the path.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What a role may do and where.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Permissions such as `read:analytics`; `read:*` grants every `read:` permission and `*`
    /// every permission.
    pub permissions: Vec<String>,
    /// Path patterns: `/api/v1/sales/*` covers `/api/v1/sales` and everything below it; `/*`
    /// covers every path.
    pub paths: Vec<String>,
    /// Columns whose values callers of this role see as pseudonyms (`customer_id`): in every
    /// JSON answer and export (ADR 0015). Such a caller may not name a customer in a request.
    #[serde(default)]
    pub pseudonymise: Vec<String>,
}

impl Role {
    fn grants(&self, permission: &str) -> bool {
        self.permissions.iter().any(|granted| {
            granted == "*"
                || granted == permission
                || granted
                    .strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with(':') && permission.starts_with(prefix))
        })
    }

    fn covers(&self, path: &str) -> bool {
        self.paths
            .iter()
            .any(|pattern| match pattern.strip_suffix("/*") {
                Some("") => true,
                Some(prefix) => {
                    path == prefix
                        || path
                            .strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('/'))
                }
                None => path == pattern,
            })
    }
}

/// Every role, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    roles: BTreeMap<String, Role>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    roles: BTreeMap<String, Role>,
}

impl Default for Policy {
    /// The built-in roles of the design.
    fn default() -> Self {
        let role = |permissions: &[&str], paths: &[&str]| Role {
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            pseudonymise: Vec::new(),
        };
        let roles = BTreeMap::from([
            (
                "data_analyst".to_owned(),
                Role {
                    pseudonymise: vec!["customer_id".to_owned()],
                    ..role(
                        &["read:analytics", "read:reports", "read:search"],
                        &[
                            "/api/v1/sales/*",
                            "/api/v1/search/*",
                            "/api/v2/analytics/*",
                            "/api/v2/models",
                            "/api/v2/recommendations/*",
                        ],
                    )
                },
            ),
            (
                "data_engineer".to_owned(),
                role(
                    &["read:*", "write:etl", "manage:pipelines", "manage:alerts"],
                    &["/api/*", "/admin/*"],
                ),
            ),
            (
                "alert_sender".to_owned(),
                role(&["write:alerts"], &["/api/v2/alerts"]),
            ),
            (
                "marketing".to_owned(),
                role(&["export:marketing"], &["/api/v1/marketing/*"]),
            ),
            (
                "consent_recorder".to_owned(),
                role(&["manage:consent"], &["/api/v1/customers/*"]),
            ),
            ("admin".to_owned(), role(&["*"], &["/*"])),
        ]);
        Self { roles }
    }
}

impl Policy {
    /// The built-in roles plus (overriding by name) those of a TOML file:
    ///
    /// ```toml
    /// [roles.auditor]
    /// permissions = ["read:reports"]
    /// paths = ["/api/v1/sales/*"]
    /// ```
    ///
    /// # Errors
    ///
    /// When the text is not valid TOML of that shape.
    pub fn with_file_text(text: &str) -> Result<Self, String> {
        let file: RolesFile = toml::from_str(text).map_err(|error| error.to_string())?;
        let mut policy = Self::default();
        policy.roles.extend(file.roles);
        Ok(policy)
    }

    /// Whether `role` may use `permission` on `path`. Unknown roles may do nothing.
    pub fn allows(&self, role: &str, permission: &str, path: &str) -> bool {
        self.roles
            .get(role)
            .is_some_and(|r| r.grants(permission) && r.covers(path))
    }

    /// The columns `role` sees as pseudonyms (none for an unknown role, which may do nothing).
    pub fn pseudonymised(&self, role: &str) -> &[String] {
        self.roles
            .get(role)
            .map_or(&[], |r| r.pseudonymise.as_slice())
    }

    /// Whether a role of this name exists.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// The role names.
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_roles_follow_the_design() {
        let policy = Policy::default();
        let cases = [
            (
                "data_analyst",
                "read:analytics",
                "/api/v2/analytics/sales-summary",
                true,
            ),
            ("data_analyst", "read:reports", "/api/v1/sales", true),
            (
                "data_analyst",
                "read:data",
                "/api/v1/customers/17850",
                false,
            ),
            (
                "data_analyst",
                "write:etl",
                "/api/v1/ingest/transactions",
                false,
            ),
            (
                "data_analyst",
                "manage:pipelines",
                "/admin/pipeline/run",
                false,
            ),
            (
                "data_engineer",
                "read:analytics",
                "/api/v2/analytics/top-products",
                true,
            ),
            (
                "data_engineer",
                "read:data",
                "/api/v1/customers/17850",
                true,
            ),
            (
                "data_engineer",
                "write:etl",
                "/api/v1/ingest/transactions",
                true,
            ),
            (
                "data_engineer",
                "manage:pipelines",
                "/admin/pipeline/run",
                true,
            ),
            ("data_engineer", "manage:users", "/admin/users", false),
            ("admin", "manage:users", "/admin/users", true),
            (
                "nobody",
                "read:analytics",
                "/api/v2/analytics/returns",
                false,
            ),
        ];
        for (role, permission, path, allowed) in cases {
            assert_eq!(
                policy.allows(role, permission, path),
                allowed,
                "{role} {permission} {path}"
            );
        }
        // A prefix pattern does not match a longer name.
        assert!(!policy.allows("data_analyst", "read:reports", "/api/v1/salesforce"));
    }

    #[test]
    fn a_roles_file_adds_roles_and_bad_files_are_refused() {
        let policy = Policy::with_file_text(
            "[roles.auditor]\npermissions = [\"read:reports\"]\npaths = [\"/api/v1/sales/*\"]\n",
        )
        .unwrap();
        assert!(policy.allows("auditor", "read:reports", "/api/v1/sales"));
        assert!(!policy.allows("auditor", "read:analytics", "/api/v2/analytics/geography"));
        assert!(policy.has_role("admin"));
        assert!(Policy::with_file_text("[roles.x]\npermissions = 3\n").is_err());
    }
}
