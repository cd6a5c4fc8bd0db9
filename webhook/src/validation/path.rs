//! Field paths that are written out only when a finding names them.

use std::fmt;

/// A field path such as `spec.http[0].route[1].weight`, in the notation the parser uses,
/// kept as a link to its parent and written out (one `String`) only when a finding is
/// reported: checking a valid object builds no path text at all.
///
/// The rules take `impl Into<Path>`, so a path can also be given as text (`"spec.exportTo"`,
/// `&format!(..)`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path<'a> {
    /// A path given as text: a root such as `spec`, or a path already written out.
    Text(&'a str),
    /// `parent.name`: a field of an object, or a key of a map (`headers.x-user`).
    Field(&'a Path<'a>, &'a str),
    /// `parent[index]`: an element of a list.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// The path of field (or map key) `name` under this one: `self.name`.
    pub(crate) fn field<'b>(&'b self, name: &'b str) -> Path<'b> {
        Path::Field(self, name)
    }

    /// The path of element `index` of the list at this path: `self[index]`.
    pub(crate) fn index(&self, index: usize) -> Path<'_> {
        Path::Index(self, index)
    }
}

impl fmt::Display for Path<'_> {
    /// Writes the path, e.g. `spec.http[0].route[1].weight`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Text(text) => f.write_str(text),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

impl<'a> From<&'a str> for Path<'a> {
    fn from(text: &'a str) -> Self {
        Path::Text(text)
    }
}

impl<'a> From<&'a String> for Path<'a> {
    fn from(text: &'a String) -> Self {
        Path::Text(text)
    }
}

impl<'a> From<&'a Path<'a>> for Path<'a> {
    fn from(path: &'a Path<'a>) -> Self {
        *path
    }
}

impl From<Path<'_>> for String {
    /// The path written out, for a finding.
    fn from(path: Path<'_>) -> Self {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Path;

    #[test]
    fn writes_fields_indexes_and_keys_in_the_parser_notation() {
        let spec = Path::from("spec");
        let http = spec.field("http");
        let route = http.index(0);
        let weight = route.field("route").index(12).field("weight").to_string();
        assert_eq!(weight, "spec.http[0].route[12].weight");
        let headers = Path::from("spec.http[1].match[0]");
        assert_eq!(
            String::from(headers.field("headers").field("x-user")),
            "spec.http[1].match[0].headers.x-user"
        );
    }
}
