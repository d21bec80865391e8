"""Storage given as a URI (``s3://bucket/prefix``, ``gs://...``, ``file:///...``),
opened with ``pyarrow.fs``; shared by the sweep runner and the analysis.

pyarrow reads the usual settings of each store. For S3 and S3-compatible servers
(MinIO, Ceph, moto): credentials from ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (or ``~/.aws``, an instance role), the endpoint from
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) or from the URI itself,
``s3://bucket/prefix?endpoint_override=host:9000&scheme=http``, the region from
``AWS_REGION`` or ``?region=``.
"""

from __future__ import annotations

BUCKET_STORES = ("s3", "gcs")  # the first part of a path on these is a bucket
# Words of the S3 / GCS clients' errors, for a one-line reason.
UNREACHABLE_WORDS = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Couldn't resolve", "Connection refused")
REFUSED_WORDS = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "PERMISSION_DENIED",
    "Unauthenticated",
)


def is_uri(location: str) -> bool:
    return "://" in str(location)


def split_query(uri: str) -> tuple[str, str]:
    """``(uri without its query, "?query" or "")``: the query holds options such as
    ``endpoint_override`` and belongs after any path that is joined to the URI."""
    base, separator, query = uri.partition("?")
    return base.rstrip("/"), separator + query


def join(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` appended to its path, its query kept at the end."""
    base, query = split_query(uri)
    return "/".join([base, *parts]) + query


def open_uri(uri: str):
    """``(pyarrow filesystem, path on it)`` for ``uri``, checked: the store answers,
    accepts the credentials, and its bucket exists. Otherwise ``ValueError`` with
    the reason in one line (no exception class names, no traceback)."""
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError, NotImplementedError) as error:
        raise ValueError(f"not a URI pyarrow can open ({first_line(error)})") from None
    bucket = path.split("/", 1)[0] if filesystem.type_name in BUCKET_STORES else None
    try:
        info = filesystem.get_file_info(bucket or path)
    except OSError as error:
        raise ValueError(reason(error)) from None
    if bucket is not None and info.type == pafs.FileType.NotFound:
        raise ValueError(f"bucket {bucket!r} does not exist (create it, or check the name and the endpoint)")
    return filesystem, path


def reason(error: OSError) -> str:
    """What a store's error means for the user, in one line."""
    text = first_line(error)
    if any(word in text for word in UNREACHABLE_WORDS):
        return f"endpoint unreachable ({text}); check AWS_ENDPOINT_URL or the URI's endpoint_override"
    if any(word in text for word in REFUSED_WORDS):
        return f"credentials refused ({text}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the store's login"
    return f"cannot read it ({text})"


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
