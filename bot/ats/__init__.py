"""What comes in from an applicant tracking system, and what goes back to one.

Owns intake (intake.py: the signed `/webhooks/ats` and Greenhouse events and `/imocha send` become one
application per ATS application and stage), Gem (gem/: its client, polling and score notes), the
Greenhouse Harvest v3 client (greenhouse/), decisions written back to Greenhouse or Gem (writeback/)
and the signed outgoing events for any other system (events.py).

May import bot.domain, bot.vendors, bot.imocha (types), bot.slack (outbox, access), bot.workspace,
bot.runtime (clock, claims, metrics) and store; never handlers/.
"""
