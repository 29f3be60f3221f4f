"""Catalog data: schema, loaders, validation and media checks."""

from fuserec.data.loaders import load_catalog, read_table
from fuserec.data.media import MediaError, check_audio, check_image, resolve_media
from fuserec.data.schema import (
    ATTR_PREFIX,
    AUDIO,
    AUDIO_EXTENSIONS,
    ID,
    IMAGE_EXTENSIONS,
    IMAGES,
    ITEM_ID,
    MEDIA_COLUMNS,
    PATH_SEPARATOR,
    TIMESTAMP,
    USER_ID,
    WEIGHT,
    Catalog,
    attribute_columns,
    record_text,
    text_columns,
)
from fuserec.data.validate import (
    CatalogError,
    Rejection,
    ValidationLimits,
    ValidationReport,
    validate_catalog,
)

__all__ = [
    "ATTR_PREFIX",
    "AUDIO",
    "AUDIO_EXTENSIONS",
    "ID",
    "IMAGES",
    "IMAGE_EXTENSIONS",
    "ITEM_ID",
    "MEDIA_COLUMNS",
    "PATH_SEPARATOR",
    "TIMESTAMP",
    "USER_ID",
    "WEIGHT",
    "Catalog",
    "CatalogError",
    "MediaError",
    "Rejection",
    "ValidationLimits",
    "ValidationReport",
    "attribute_columns",
    "check_audio",
    "check_image",
    "load_catalog",
    "read_table",
    "record_text",
    "resolve_media",
    "text_columns",
    "validate_catalog",
]
