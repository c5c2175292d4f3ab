"""Kafka with SASL/SCRAM over TLS, as in production: a throw-away single-node broker (the devstack's Kafka jars,
KRaft) whose only client listener is SASL_SSL, a self-signed CA, one SCRAM-SHA-512 user. Our shared helpers
(ensure_topics, make_broker + subscribe, BrokerPublisher) work over it with the right password and are refused
with a wrong one, without TLS, or without trusting its CA."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import free_ports, unique
from voxtrain_devstack.install import install_kafka
from voxtrain_shared import events as ev
from voxtrain_shared import ops
from voxtrain_shared.kafka import BrokerPublisher, ensure_topics, make_broker, subscribe
from voxtrain_shared.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
USER = "voxtrain-models"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA (``ca.pem``) and a broker key + certificate for 127.0.0.1/localhost signed by it (``broker.pem``)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("voxtrain test CA"))
        .issuer_name(_name("voxtrain test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, broker_file = folder / "ca.pem", folder / "broker.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    # Kafka's PEM key store: an unencrypted PKCS#8 key, then the certificate chain
    broker_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem)
        + ca.public_bytes(pem)
    )
    os.chmod(broker_file, 0o600)
    return ca_file, broker_file


class SaslBroker:
    """One KRaft node: SASL_SSL for clients, PLAINTEXT only between the node and itself (controller, broker)."""

    def __init__(self, folder: Path, password: str) -> None:
        self.folder, self.password = folder, password
        self.client_port, self.internal_port, self.controller_port = free_ports(3)
        self.ca_file, self.broker_file = make_certificates(folder)
        self.log = folder / "kafka.log"
        self.process: subprocess.Popen[bytes] | None = None

    def settings(self, **overrides: object) -> KafkaSettings:
        values: dict[str, object] = {
            "bootstrap_servers": f"127.0.0.1:{self.client_port}",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": USER,
            "sasl_password": self.password,
            "ssl_ca_file": str(self.ca_file),
        }
        return KafkaSettings.model_validate({**values, **overrides})

    def start(self) -> None:
        lib = install_kafka()
        c, i, p = self.controller_port, self.internal_port, self.client_port
        properties = self.folder / "server.properties"
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{c}",
                    f"listeners=SASL_SSL://127.0.0.1:{p},INTERNAL://127.0.0.1:{i},CONTROLLER://127.0.0.1:{c}",
                    f"advertised.listeners=SASL_SSL://127.0.0.1:{p},INTERNAL://127.0.0.1:{i},CONTROLLER://127.0.0.1:{c}",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=INTERNAL",
                    "sasl.enabled.mechanisms=SCRAM-SHA-512",
                    "ssl.keystore.type=PEM",
                    f"ssl.keystore.location={self.broker_file}",
                    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                    f"log.dirs={self.folder / 'log'}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        java = ["java", "-Xms64m", "-Xmx256m", "-cp", f"{lib}/*"]
        with open(self.log, "ab") as out:
            subprocess.run(
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(properties),
                    "--add-scram",
                    f"SCRAM-SHA-512=[name={USER},password={self.password}]",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
            )
            self.process = subprocess.Popen(
                [*java, "kafka.Kafka", str(properties)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    async def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        last: Exception | None = None
        while asyncio.get_running_loop().time() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                await ensure_topics(self.settings(), [], partitions=1)
                return
            except Exception as exc:  # not listening yet, or SCRAM credentials not loaded yet
                last = exc
                await asyncio.sleep(1)
        raise AssertionError(f"the SASL_SSL broker was not ready: {last!r}\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="module")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SaslBroker]:
    server = SaslBroker(tmp_path_factory.mktemp("kafka-sasl"), secrets.token_urlsafe(24))
    server.start()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


async def test_services_publish_and_consume_over_sasl_ssl_with_their_scram_user(broker: SaslBroker) -> None:
    settings = broker.settings()
    topic = unique("t.sasl")
    await ensure_topics(settings, [topic], partitions=1)
    consumer = make_broker(settings, client_id="test-consumer")
    handled: asyncio.Queue[ev.Envelope] = asyncio.Queue()
    subscribe(consumer, topic, group_id=unique("g"), handler=handled.put)
    producer = make_broker(settings, client_id="test-producer")
    sent = ev.wrap(
        ev.ModelUpdated(name="over tls", auto_train=True, changed=[]), tenant_id="acme", model_id=uuid.uuid4()
    )
    await consumer.start()
    await producer.start()
    try:
        await BrokerPublisher(producer).publish(topic, sent.to_bytes(), sent.key(), {"x-test": "sasl"})
        got = await asyncio.wait_for(handled.get(), timeout=60)
    finally:
        await producer.stop()
        await consumer.stop()
    assert (got.id, got.data["name"]) == (sent.id, "over tls")


async def test_the_console_feed_and_the_operators_readers_work_over_sasl_ssl(broker: SaslBroker) -> None:
    from voxtrain_console.feed import KafkaFeed
    from voxtrain_console.live import Hub

    settings = broker.settings(topic_namespace=unique("ns"))
    feed = KafkaFeed(settings, Hub())  # creates the namespace's topics, then tails two of them
    await feed.start()
    try:
        await feed.wait_ready(timeout=60)
    finally:
        await feed.stop()
    model_id = uuid.uuid4()
    sent = ev.wrap(ev.ModelUpdated(name="traced", auto_train=True, changed=[]), tenant_id="acme", model_id=model_id)
    producer = make_broker(settings, client_id="test-ops")
    await producer.start()
    try:
        await BrokerPublisher(producer).publish(settings.topics.models, sent.to_bytes(), sent.key(), {})
    finally:
        await producer.stop()
    rows = await ops.history_from_kafka(settings, model_id, settings.topics.all(), timeout=60)
    assert [r["type"] for r in rows] == ["ModelUpdated"]
    assert await ops.dlt_list(settings, settings.topics.models, timeout=60) == []


async def refused(settings: KafkaSettings) -> None:
    """``ensure_topics`` with ``settings`` fails (aiokafka logs why, then raises "Unable to bootstrap")."""
    try:
        await asyncio.wait_for(ensure_topics(settings, [unique("t.refused")], partitions=1), timeout=60)
    except Exception:
        return
    raise AssertionError("the broker accepted a client it should have refused")


async def test_a_wrong_password_is_refused(broker: SaslBroker, caplog: pytest.LogCaptureFixture) -> None:
    await refused(broker.settings(sasl_password="not-" + broker.password))
    assert "SaslAuthenticationFailed" in caplog.text


async def test_a_publish_with_a_wrong_password_fails(broker: SaslBroker, caplog: pytest.LogCaptureFixture) -> None:
    producer = make_broker(broker.settings(sasl_password="not-" + broker.password), client_id="test-wrong")
    with pytest.raises(Exception, match="Unable to bootstrap"):
        await asyncio.wait_for(producer.start(), timeout=60)
    await producer.stop()
    assert "SaslAuthenticationFailed" in caplog.text


async def test_no_tls_or_an_untrusted_certificate_is_refused(
    broker: SaslBroker, caplog: pytest.LogCaptureFixture
) -> None:
    await refused(broker.settings(security_protocol="SASL_PLAINTEXT"))  # SCRAM without TLS: the listener hangs up
    await refused(broker.settings(ssl_ca_file=None))  # the system CAs do not know the test CA
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert "SaslAuthenticationFailed" not in caplog.text  # refused before any password was sent


def test_sasl_without_a_user_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="VOXTRAIN_KAFKA__SASL_USERNAME and VOXTRAIN_KAFKA__SASL_PASSWORD"):
        KafkaSettings(security_protocol="SASL_SSL")
