"""The request log names the code of every refused request (issue 19, item 14), never a secret or token.

docs/emulator.md sends the admin whose Cypht shows "An Error Occurred" to ``GET /_emulator/log`` for
the AADSTS7000215 of a wrong ``*_CLIENT_SECRET``: the entry must carry it.
"""

from __future__ import annotations

import httpx

from cypht_azure.emulator import Emulator

from .conftest import Graph, SignIn, ca_context, token_for, web_app
from .test_signin_authorize import RU, query


def _log(emu: Emulator) -> list[dict[str, object]]:
    r = httpx.get(f"{emu.base_url}/_emulator/log", verify=ca_context(emu))
    assert r.status_code == 200
    return list(r.json()["value"])


def test_every_refusal_is_logged_with_its_code_and_nothing_secret(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    wrong = "wrong~" + secret[6:]
    code = signin.authorize("/oauth20_authorize.srf", query(client_id, scope="wl.imap"),
                            form={"login": "carol@outlook.com", "consent": "accept"})
    sent_code = dict(httpx.URL(code.headers["location"]).params)["code"]
    # Cypht's code exchange with a wrong secret: login.live.com's 401
    r = signin.token("/oauth20_token.srf", {"grant_type": "authorization_code", "code": sent_code,
                                            "client_id": client_id, "client_secret": wrong, "redirect_uri": RU})
    assert r.status_code == 401
    # the v2 token endpoint, an unregistered redirect URI (error page), a declined consent (redirect)
    assert signin.token("/common/oauth2/v2.0/token", {"grant_type": "client_credentials", "client_id": client_id,
                                                      "client_secret": wrong,
                                                      "scope": "https://graph.microsoft.com/.default"}).status_code == 401
    assert signin.authorize("/common/oauth2/v2.0/authorize",
                            query(client_id, redirect_uri="https://elsewhere.example/")).status_code == 200
    assert signin.authorize("/common/oauth2/v2.0/authorize", query(client_id),
                            form={"login": "carol@outlook.com", "consent": "cancel"}).status_code == 302
    # Graph: an app without permissions, and no token at all
    nobody_id, nobody_secret = emulator.directory.add_app_identity("nobody", roles=[])
    graph = Graph(emulator, token_for(emulator, nobody_id, nobody_secret))
    assert graph.get("/applications").status_code == 403
    graph.close()
    assert httpx.get(emulator.info["graph_url"] + "/applications", verify=ca_context(emulator)).status_code == 401

    entries = _log(emulator)
    refused = [(e["method"], str(e["path"]).split("?")[0], e["status"], e["error"]) for e in entries
               if e["error"] is not None]
    assert refused == [
        ("POST", "/oauth20_token.srf", 401, "AADSTS7000215"),
        ("POST", "/common/oauth2/v2.0/token", 401, "AADSTS7000215"),
        ("GET", "/common/oauth2/v2.0/authorize", 200, "AADSTS50011"),
        ("POST", "/common/oauth2/v2.0/authorize", 302, "AADSTS65004"),
        ("GET", "/v1.0/applications", 403, "Authorization_RequestDenied"),
        ("GET", "/v1.0/applications", 401, "InvalidAuthenticationToken"),
    ], refused
    assert all(e["error"] is None for e in entries if e["status"] in (200, 201) and e["kind"] == "token")
    text = str(entries)
    assert secret not in text and wrong not in text and sent_code not in text and nobody_secret not in text
