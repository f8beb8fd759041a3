welcome = Welcome to CyberVPN, { $name }! Fast, private VPN in a couple of taps.
welcome-back = Welcome back, { $name }!
referral-linked = You joined with a friend's invitation: they get bonus days. Thank you!
referral-refused = The invitation code was not accepted: { $reason }
trial-offer = New here? Try CyberVPN free for { $days } days.
menu-title = What would you like to do?
button-plans = 🛒 Plans
button-trial = 🎁 Free trial
button-config = 🔑 My VPN config
button-referral = 👥 Invite friends
button-support = 💬 Support
button-language = 🌐 Language
button-back = ⬅️ Back
status-active = Your subscription is active until { $until }.
status-none = You have no active subscription.
plans-choose-tier = Choose a plan:
plans-choose-duration = { $tier }: choose how long.
plan-button = { $days } days — { $prices }
tier-basic = Basic
tier-pro = Pro
tier-ultra = Ultra
tier-cyber = Cyber
plans-choose-gateway = { $plan }, { $days } days. How would you like to pay?
gateway-telegram_stars = ⭐ Telegram Stars
gateway-cryptobot = 💎 Crypto (CryptoBot)
gateway-stripe = 💳 Card (Stripe)
gateway-yookassa = 🇷🇺 Card / SBP (YooKassa)
invoice-title = CyberVPN { $plan }
invoice-description = { $days } days of CyberVPN.
pay-by-link = Pay { $amount } for { $days } days. Your subscription starts as soon as the payment arrives.
button-pay = Pay now
payment-received = Payment received! Your subscription runs until { $until }.
payment-review = We received your payment, but it needs a quick check by our team. We will get back to you.
payment-refunded = Your payment was refunded.
trial-started = Your free trial is active until { $until }. Send /config to connect.
trial-used = You have already used the free trial.
config-caption = Scan the QR code in your VPN app, or import this link:
    { $url }
config-instructions = How to connect:
    • Android: v2rayNG or Hiddify — “+” → import from clipboard.
    • iPhone / Mac: Streisand or V2Box — add subscription.
    • Windows: Hiddify or Nekoray — add subscription link.
config-none = You have no subscription yet. Take the free trial or choose a plan.
config-pending = Your subscription is being set up. Try again in a minute.
referral-stats = Invite friends and get { $bonus } extra days for each of them (up to { $max }).
    Your link: { $link }
    Friends joined: { $count }. Days earned: { $days }.
support-prompt = Describe your problem in one message and our team will answer you here.
support-sent = Thank you! Your request #{ $id } has been sent to our team.
support-empty = Please describe your problem in a text message.
language-choose = Choose your language:
language-set = Language set to English.
maintenance = CyberVPN is under maintenance. Please try again a bit later.
slow-down = Too many requests. Please wait a moment.
error-generic = Something went wrong. Please try again later.
error-not-registered = Please send /start first.
error-blocked = Your account is blocked. Contact support if you think this is a mistake.
error-gateway = This payment method is unavailable right now. Please choose another one.
error-invalid = { $reason }
unknown-command = I did not understand that. Here is the menu:
command-start = Start and main menu
command-plans = Buy or extend a subscription
command-trial = Free trial
command-config = My VPN config and QR code
command-referral = Invite friends
command-support = Contact support
command-language = Change language
admin-linked = Your Telegram account is now linked to your staff account ({ $role }). Send /admin to open the panel.
admin-link-failed = The code is wrong, used or expired. Get a new one in the admin panel.
admin-only = This is for staff. Link your account first: get a code in the admin panel and send /link CODE.
admin-denied = Your role does not allow this.
admin-menu = Admin panel — { $username } ({ $role }).
button-admin-stats = 📊 Stats
button-admin-find = 🔎 Find customer
admin-stats = Customers: { $customers }
    Active subscriptions: { $active }
    Trials taken: { $trials }
    Revenue today: { $today }
    Last 7 days: { $week }
    Last 30 days: { $month }
admin-no-revenue = none
admin-find-prompt = Send an email, username or Telegram id.
admin-no-results = No customer found.
admin-customer = { $username } · { $status }
    Email: { $email } · Telegram: { $telegram }
    Subscription: { $subscription }
    Loyalty: { $loyalty }
button-ban = 🚫 Ban
button-unban = ✅ Unban
button-extend = ➕ 30 days
admin-banned = { $username } is banned.
admin-unbanned = { $username } is unbanned.
admin-extended = Extended: the subscription now runs until { $until }.
button-admin-audit = 📜 Audit log
button-reset-traffic = ♻️ Reset traffic
admin-traffic-reset = Traffic reset queued for the panel.
admin-audit-empty = No staff actions yet.
button-admin-broadcast = 📣 Broadcast
admin-broadcast-audience = Who gets the broadcast?
button-audience-all = Everyone
button-audience-active = Paying customers
button-audience-trial = On a trial
admin-broadcast-prompt = Send the message: text, or a photo with a caption.
admin-broadcast-invalid = A broadcast is 1 to 4096 characters of text, or a photo with a caption of up to 1024.
admin-broadcast-preview = Above is the message as customers will see it. It goes to { $total } customers. Send it?
button-broadcast-send = ✅ Send
button-broadcast-cancel = ✖ Cancel
admin-broadcast-started = Sending to { $total } customers, at most 25 messages a second. You will get a report when it is done.
admin-broadcast-cancelled = The broadcast is cancelled.
admin-broadcast-progress = Broadcast: { $sent } of { $total } delivered, { $blocked } blocked the bot, { $failed } failed, { $unconfirmed } unconfirmed.
admin-broadcast-report = Broadcast finished: { $sent } of { $total } delivered, { $blocked } blocked the bot, { $failed } failed, { $unconfirmed } unconfirmed.
button-broadcast-progress = 🔄 Progress
button-admin-promos = 🎟 Promo codes
button-promo-new = ➕ New code
button-promo-off = Switch off { $code }
admin-promo-empty = No promo codes yet.
admin-promo-on = on
admin-promo-state-off = off
admin-promo-prompt = Send the new code: CODE 20% for a discount or CODE +7d for bonus days, then optionally the number of uses and the days it stays valid (e.g. SPRING 20% 100 30).
admin-promo-invalid = That is not a promo code line. Example: SPRING 20% 100 30, or GIFT +7d.
admin-promo-created = Promo code created: { $line }
admin-promo-refused = The promo code was not created: { $reason }
admin-promo-off = The promo code is switched off.
button-admin-plans = 🗂 Plans
button-admin-gateways = 💳 Gateways
button-plan-prices = 💲 Set prices
button-plan-new = ➕ New plan
button-plan-retire = Retire
button-plan-sell = Put on sale
admin-plan-on-sale = on sale
admin-plan-retired = retired
admin-plan-prices-prompt = Send the plan code and its new prices, e.g. pro_30 9.99 USD 899 RUB 500 XTR.
admin-plan-new-prompt = Send the new plan: tier, days (30, 90, 180 or 365), devices, traffic in GB (0 for unlimited) and prices, e.g. pro 30 5 0 9.99 USD 899 RUB 500 XTR.
admin-plan-invalid = That is not a plan line. Prices are amounts with currencies, e.g. 9.99 USD 899 RUB 500 XTR.
admin-plan-refused = The plan was not saved: { $reason }
admin-gateway-unconfigured = not configured
admin-gateway-on = on
admin-gateway-off = switched off
button-gateway-on = Switch on { $gateway }
button-gateway-off = Switch off { $gateway }
button-admin-notices = 📝 Notices
admin-notices = The notices customers get, per language (✎: reworded). Pick one to reword it.
admin-notice-prompt = { $kind } ({ $language }) now reads:
    { $text }
    Placeholders: { $placeholders }
    Send the new text, or "default" to restore the built-in one.
admin-notice-saved = Saved. Customers now get: { $text }
admin-notice-refused = Not saved: { $reason }
button-promo-enter = 🎟 I have a promo code
plans-promo-prompt = Send your promo code.
plans-promo-refused = This code cannot be used: { $reason }
plans-promo-applied = Code { $code } accepted for { $plan }: { $benefit }. Choose how to pay:
button-invites = 🎟 Invites
button-redeem-invite = 🎁 I have an invite code
command-invites = Invite codes
invites-none = You have no invite codes yet. Every plan purchase brings codes that give your friends free days, and you get extra days when they subscribe.
invites-title = Your invite codes: { $count } available. Each gives a friend free days; when the friend first pays, you get bonus days.
invites-code = { $code } — { $days } days, valid until { $until }
    { $link }
invite-prompt = Send the invite code you received.
invite-redeemed = Invite accepted: { $days } free days, your subscription runs until { $until }. Open your config to connect.
button-loyalty = ⭐ Loyalty
command-loyalty = My loyalty level
loyalty-status = ⭐ Your loyalty level: { $level } ({ $days } paid days in a row).
loyalty-next = { $level } in { $days } more paid days. Longer plans get you there faster.
loyalty-top = This is the top level. Thank you for staying with us!
loyalty-perk-priority-support = ✔ Priority support
loyalty-perk-early-access = ✔ Early access to new features
loyalty-perk-premium-squad = ✔ Premium servers
loyalty-grace = Your paid subscription has ended: the level is kept until { $until }. Renew before then to keep it.
loyalty-bonus = Bonus days received: { $days }.
loyalty-level-bronze = Bronze
loyalty-level-silver = Silver
loyalty-level-gold = Gold
loyalty-level-platinum = Platinum
button-mini-app = 📱 Open the app
