"""First start: the operator's admin key from the environment, and what it may not be."""

from pathlib import Path

import pytest

from tokenmill.bootstrap import bootstrap, open_database
from tokenmill.config import Settings
from tokenmill.security.accounts import Accounts, KeySpec
from tokenmill.security.keys import KeyRing
from tokenmill.security.roles import Role


def test_a_revoked_admin_key_in_the_environment_is_refused_not_revived(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, admin_key="tm-" + "r" * 40, deploy_default_model=False)
    engine = open_database(settings)
    bootstrap(settings, engine)
    accounts = Accounts(engine, KeyRing())
    (key,) = accounts.list_keys("system")
    accounts.create_key("system", "other-admin", KeySpec(Role.PLATFORM_ADMIN))
    accounts.revoke_key(str(key["id"]))
    with pytest.raises(ValueError, match="revoked or expired"):
        bootstrap(settings, engine)
