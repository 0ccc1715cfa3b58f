"""Every command, callback_id, action_id and block_id the app uses, in one place."""

COMMAND = "/imocha"

# modals (callback_id)
SETUP_VIEW = "imocha_setup"
PLAN_VIEW = "imocha_plan"
SEND_VIEW = "imocha_send_confirm"
MANUAL_SEND_VIEW = "imocha_manual_send"
INFO_VIEW = "imocha_info"

# card and App Home buttons (action_id)
SEND = "send_assessment"
RETRY = "retry_send"
CANCEL = "cancel_invitation"
RESEND = "resend_invitation"
REATTEMPT = "allow_reattempt"
REVIEWED = "mark_reviewed"
SHOW_SCORE = "show_score"
ADVANCE = "advance_candidate"
REJECT = "reject_candidate"
UNDO_DECISION = "undo_decision"
WRITEBACK_RETRY = "retry_writeback"  # on the thread reply that says a decision was not written back to the ATS
REPORT_LINK = "open_report"
TEST_LINK = "open_test_link"
PLAN_EDIT = "plan_edit"
PLAN_REMOVE = "plan_remove"
PLAN_NEW = "plan_new"
HOME_MORE = "home_show_more"
HOME_REFRESH = "home_refresh"

CARD_ACTIONS = (SEND, RETRY, CANCEL, RESEND, REATTEMPT, REVIEWED, SHOW_SCORE, ADVANCE, REJECT, UNDO_DECISION, WRITEBACK_RETRY)

# input blocks (block_id) and their elements (action_id)
KEY_BLOCK, KEY_INPUT = "api_key", "api_key_input"
DEFAULT_CHANNEL_BLOCK, DEFAULT_CHANNEL_INPUT = "default_channel", "default_channel_input"
VALIDITY_BLOCK, VALIDITY_INPUT = "validity_days", "validity_days_input"
GEM_KEY_BLOCK, GEM_KEY_INPUT = "gem_key", "gem_key_input"
HARVEST_ID_BLOCK, HARVEST_ID_INPUT = "harvest_client_id", "harvest_client_id_input"
HARVEST_SECRET_BLOCK, HARVEST_SECRET_INPUT = "harvest_client_secret", "harvest_client_secret_input"
JOB_BLOCK, JOB_INPUT = "job", "job_input"
STAGE_BLOCK, STAGE_INPUT = "stage", "stage_input"
TEST_BLOCK, TEST_INPUT = "test", "test_select"
CHANNEL_BLOCK, CHANNEL_INPUT = "channel", "channel_input"
PASS_MARK_BLOCK, PASS_MARK_INPUT = "pass_mark", "pass_mark_input"
SHARE_BLOCK, SHARE_INPUT = "share_scores", "share_scores_input"
DIGEST_BLOCK, DIGEST_INPUT = "weekly_digest", "weekly_digest_input"
USE_BLOCK, USE_INPUT = "use", "use_input"
NAME_BLOCK, NAME_INPUT = "candidate_name", "candidate_name_input"
EMAIL_BLOCK, EMAIL_INPUT = "candidate_email", "candidate_email_input"

USE_REUSE = "reuse"
USE_REATTEMPT = "reattempt"

# The Workflow Builder step (a custom function: the manifest's `functions`, `function_executed` events).
SEND_FUNCTION = "send_imocha_assessment"

EVENTS = ("app_home_opened", "app_uninstalled", "tokens_revoked", "function_executed")
