"""The set-up's statements for the runtime roles' own service users (README "One Snowflake
user per role"): the public key comes from the key file the user's login names, and a key
that cannot be used stops the set-up naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from stockpipe.settings import Settings
from stockpipe.warehouse.base import WarehouseError
from stockpipe.warehouse.setup import service_user_statements


def _write(path: Path, key, password: bytes | None = None) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def _settings(**logins: dict) -> Settings:
    return Settings(warehouse={"backend": "embedded", "warehouse": "STOCKPIPE_WH", **logins})


def test_each_service_user_gets_its_public_key_and_its_role_alone(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = _settings(
        loader_login={
            "user": "stockpipe_loader_svc",
            "private_key_file": _write(tmp_path / "k", key),
        }
    )
    [(name, statements)] = service_user_statements(settings)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = "".join(public.decode().splitlines()[1:-1])
    assert name == "service user STOCKPIPE_LOADER_SVC (STOCKPIPE_LOADER)"
    assert statements == [
        "create user if not exists STOCKPIPE_LOADER_SVC type = service default_role = "
        f"STOCKPIPE_LOADER default_warehouse = STOCKPIPE_WH rsa_public_key = '{body}'",
        f"alter user STOCKPIPE_LOADER_SVC set rsa_public_key = '{body}'",
        "grant role STOCKPIPE_LOADER to user STOCKPIPE_LOADER_SVC",
    ]
    assert service_user_statements(_settings()) == []  # the shared login: no user to make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "not a readable, unencrypted PEM private key"),  # no such file
        (
            lambda p: _write(
                p, rsa.generate_private_key(public_exponent=65537, key_size=2048), b"pw"
            ),
            "not a readable, unencrypted PEM private key",
        ),
        (lambda p: _write(p, ec.generate_private_key(ec.SECP256R1())), "key pairs are RSA"),
    ],
)
def test_a_key_the_setup_cannot_use_is_named_with_its_setting(
    tmp_path: Path, make, message
) -> None:
    path = make(tmp_path / "reader.p8")
    settings = _settings(reader_login={"user": "reader_svc", "private_key_file": path})
    with pytest.raises(WarehouseError) as refused:
        service_user_statements(settings)
    assert f"STOCKPIPE_WAREHOUSE__READER_LOGIN__PRIVATE_KEY_FILE={path}" in str(refused.value)
    assert message in str(refused.value)
