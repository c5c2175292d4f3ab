"""The pinned server versions: the one place they are set.

``docker-compose.yml`` and ``deploy/Dockerfile`` use the same versions (``tests/deploy/test_compose.py``
checks that they match).
"""

KAFKA_VERSION = "4.1.2"
KAFKA_ARTIFACT = "org.apache.kafka:kafka_2.13"
#: Kafka ships no SLF4J binding; this one matches the slf4j-api 1.7.x that Kafka resolves.
SLF4J_SIMPLE = "org.slf4j:slf4j-simple:1.7.36"
KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"

#: MinIO's community edition is source-only; tags are not semver, so a commit pseudo-version is pinned.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"

POSTGRES_MAJOR = 15
POSTGRES_IMAGE = f"postgres:{POSTGRES_MAJOR}"
