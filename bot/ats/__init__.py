"""What comes in from an applicant tracking system, and what goes back to one.

Owns intake (intake.py: the signed `/webhooks/ats` and Greenhouse events and `/imocha send` become one
application per ATS application and stage), the Gem ATS client and its polling (gem.py, gem_poller.py,
gem_intake.py, gem_stages.py, gem_directory.py) and score notes (gem_notes.py), the Greenhouse Harvest
v3 client (greenhouse/), decisions written back to Greenhouse or Gem (writeback/: the worker in its __init__, rows.py its
table, greenhouse.py and gem.py the writers, job.py what they share) and the signed
outgoing events for any other system (events.py).

May import bot.domain, bot.vendors, bot.imocha (types), bot.slack (outbox, access), bot.workspace,
bot.runtime (clock, claims, metrics) and store; never handlers/.
"""
