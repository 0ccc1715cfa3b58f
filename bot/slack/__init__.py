"""Slack as a service: everything the bot sends to Slack and the rules about who may act there.

Owns the Web API gateway (gateway.py: one client per workspace token, users.info and membership
lookups), the outbox (outbox/: Slack writes stored with the state change they announce, delivered
once, paced per Slack budget by pacing.py), the Socket Mode link (socket_mode.py; socket_envelopes.py
acks and dispatches what arrives on it), the App Home queue (home.py), who may act on a card
(access.py), ack priority for the work pool (acks.py), Slack OAuth installs (oauth.py) and the
Workflow Builder step (workflow_step.py).

May import bot.domain, bot.views, bot.assessments (the step sends through it), bot.ats.intake,
bot.workspace, bot.runtime (clock, claims, metrics) and store. Never handlers/: messages are rendered
by a Renderer the composition root injects (handlers/blocks/replies.py).
"""
