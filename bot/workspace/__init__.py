"""A workspace's setup: the keys, the defaults, the interview plans, and the iMocha test list.

Owns the `/imocha setup` use case (setup.py: admins only, each key checked live, what is saved when a
check fails), the stored settings and keys at rest (settings.py, crypto.py: Fernet), interview plans
(plans.py: a job's stage bound to a test and a hiring channel) and the test-list cache the pickers read
(test_lists.py).

May import bot.domain, bot.imocha, bot.ats (the Gem and Harvest clients, to check their keys),
bot.slack.access, bot.runtime (clock) and store; never handlers/.
"""
