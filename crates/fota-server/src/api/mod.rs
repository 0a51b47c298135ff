//! HTTP handlers, one module per audience.

pub mod device;
pub mod legacy;
pub mod misc;
pub mod operator;

/// The OpenAPI schema of a raw binary body (`type: string, format: binary`): fota-protocol
/// records, blobs, signed envelopes. `Vec<u8>` would document an array of integers.
#[derive(Debug, Clone, Copy)]
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}
