"""How an agent's reply names other agents' bots, and what Feishu is sent for it."""

from __future__ import annotations

from rudder.feishu.handoff_mentions import Bot, mentioned, render

BETA = Bot("i-beta", "a-beta", "Beta", "Beta Bot", "ou_beta")
GAMMA = Bot("i-gamma", "a-gamma", "Gamma", None, "ou_gamma")
BOTS = [BETA, GAMMA]


def test_names_match_in_any_case_at_a_word_end() -> None:
    assert mentioned("over to @beta, please", BOTS) == [BETA]
    assert mentioned("@Betamax and @Gammas are not bots", BOTS) == []
    assert mentioned("mail beta@example.com", BOTS) == []
    # The longest name wins where two start alike: the bot's name, not the agent's.
    assert mentioned("ask @Beta Bot now", BOTS) == [BETA]
    # Case folding that changes a length does not shift what follows.
    assert mentioned(
        "@STRASSE ß and @GAMMA", [*BOTS, Bot("i-s", "a-s", "Straße", None, "ou_s")]
    ) == [GAMMA]


def test_feishu_tags_name_a_bot_by_its_open_id() -> None:
    text = 'then <at user_id="ou_gamma">G</at> and <at id=ou_beta></at> and <at id=ou_x></at>'
    assert mentioned(text, BOTS) == [GAMMA, BETA]


def test_each_bot_once_in_the_order_of_its_first_mention() -> None:
    assert mentioned("@Gamma @Beta @Gamma @beta", BOTS) == [GAMMA, BETA]


def test_rendered_as_real_mentions_for_cards_and_text() -> None:
    text = "@Beta Bot take it; @gamma after"
    assert (
        render(text, BOTS, card=True) == "<at id=ou_beta></at> take it; <at id=ou_gamma></at> after"
    )
    assert render(text, BOTS, card=False) == (
        '<at user_id="ou_beta">Beta Bot</at> take it; <at user_id="ou_gamma">Gamma</at> after'
    )
    assert render("no one here", BOTS, card=True) == "no one here"
    # A bot not passed in (not in the chat) stays as written.
    assert render("@Gamma", [BETA], card=True) == "@Gamma"
