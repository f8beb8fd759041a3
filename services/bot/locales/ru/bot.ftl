welcome = Добро пожаловать в CyberVPN, { $name }! Быстрый и приватный VPN в пару касаний.
welcome-back = С возвращением, { $name }!
referral-linked = Вы пришли по приглашению друга: он получит бонусные дни. Спасибо!
referral-refused = Код приглашения не принят: { $reason }
trial-offer = Впервые здесь? Попробуйте CyberVPN бесплатно { $days } дн.
menu-title = Что вы хотите сделать?
button-plans = 🛒 Тарифы
button-trial = 🎁 Бесплатный период
button-config = 🔑 Мой VPN-конфиг
button-referral = 👥 Пригласить друзей
button-support = 💬 Поддержка
button-language = 🌐 Язык
button-back = ⬅️ Назад
status-active = Ваша подписка активна до { $until }.
status-none = У вас нет активной подписки.
plans-choose-tier = Выберите тариф:
plans-choose-duration = { $tier }: выберите срок.
plan-button = { $days } дн. — { $prices }
tier-basic = Базовый
tier-pro = Про
tier-ultra = Ультра
tier-cyber = Кибер
plans-choose-gateway = { $plan }, { $days } дн. Как вы хотите оплатить?
gateway-telegram_stars = ⭐ Telegram Stars
gateway-cryptobot = 💎 Криптовалюта (CryptoBot)
gateway-stripe = 💳 Карта (Stripe)
gateway-yookassa = 🇷🇺 Карта / СБП (ЮKassa)
invoice-title = CyberVPN { $plan }
invoice-description = { $days } дн. CyberVPN.
pay-by-link = Оплатите { $amount } за { $days } дн. Подписка начнётся сразу после поступления оплаты.
button-pay = Оплатить
payment-received = Оплата получена! Ваша подписка действует до { $until }.
payment-review = Мы получили ваш платёж, но его нужно быстро проверить. Мы свяжемся с вами.
payment-refunded = Ваш платёж возвращён.
trial-started = Бесплатный период активен до { $until }. Отправьте /config, чтобы подключиться.
trial-used = Вы уже использовали бесплатный период.
config-caption = Отсканируйте QR-код в VPN-приложении или импортируйте ссылку:
    { $url }
config-instructions = Как подключиться:
    • Android: v2rayNG или Hiddify — «+» → импорт из буфера обмена.
    • iPhone / Mac: Streisand или V2Box — добавить подписку.
    • Windows: Hiddify или Nekoray — добавить ссылку подписки.
config-none = У вас ещё нет подписки. Возьмите бесплатный период или выберите тариф.
config-pending = Подписка настраивается. Попробуйте через минуту.
referral-stats = Приглашайте друзей и получайте { $bonus } дополнительных дн. за каждого (до { $max }).
    Ваша ссылка: { $link }
    Присоединилось друзей: { $count }. Получено дней: { $days }.
support-prompt = Опишите проблему одним сообщением, и наша команда ответит вам здесь.
support-sent = Спасибо! Ваше обращение №{ $id } отправлено нашей команде.
support-empty = Пожалуйста, опишите проблему текстовым сообщением.
language-choose = Выберите язык:
language-set = Язык изменён на русский.
maintenance = CyberVPN на техническом обслуживании. Попробуйте чуть позже.
slow-down = Слишком много запросов. Подождите немного.
error-generic = Что-то пошло не так. Попробуйте позже.
error-not-registered = Сначала отправьте /start.
error-blocked = Ваш аккаунт заблокирован. Если это ошибка, напишите в поддержку.
error-gateway = Этот способ оплаты сейчас недоступен. Выберите другой.
error-invalid = { $reason }
unknown-command = Я не понял. Вот меню:
command-start = Начало и главное меню
command-plans = Купить или продлить подписку
command-trial = Бесплатный период
command-config = Мой VPN-конфиг и QR-код
command-referral = Пригласить друзей
command-support = Написать в поддержку
command-language = Сменить язык
admin-linked = Ваш Telegram привязан к аккаунту сотрудника ({ $role }). Отправьте /admin, чтобы открыть панель.
admin-link-failed = Код неверный, уже использован или истёк. Получите новый в админ-панели.
admin-only = Это для сотрудников. Сначала привяжите аккаунт: получите код в админ-панели и отправьте /link КОД.
admin-denied = Ваша роль этого не позволяет.
admin-menu = Админ-панель — { $username } ({ $role }).
button-admin-stats = 📊 Статистика
button-admin-find = 🔎 Найти клиента
admin-stats = Клиентов: { $customers }
    Активных подписок: { $active }
    Взято пробных периодов: { $trials }
    Выручка сегодня: { $today }
    За 7 дней: { $week }
    За 30 дней: { $month }
admin-no-revenue = нет
admin-find-prompt = Отправьте email, имя пользователя или Telegram id.
admin-no-results = Клиент не найден.
admin-customer = { $username } · { $status }
    Email: { $email } · Telegram: { $telegram }
    Подписка: { $subscription }
    Лояльность: { $loyalty }
button-ban = 🚫 Заблокировать
button-unban = ✅ Разблокировать
button-extend = ➕ 30 дней
admin-banned = { $username } заблокирован.
admin-unbanned = { $username } разблокирован.
admin-extended = Продлено: подписка действует до { $until }.
button-admin-audit = 📜 Журнал действий
button-reset-traffic = ♻️ Сбросить трафик
admin-traffic-reset = Сброс трафика поставлен в очередь панели.
admin-audit-empty = Действий сотрудников пока нет.
button-admin-broadcast = 📣 Рассылка
admin-broadcast-audience = Кому отправить рассылку?
button-audience-all = Всем
button-audience-active = Платящим клиентам
button-audience-trial = На пробном периоде
admin-broadcast-prompt = Пришлите сообщение: текст или фото с подписью.
admin-broadcast-invalid = Рассылка — это текст от 1 до 4096 символов или фото с подписью до 1024 символов.
admin-broadcast-preview = Выше — сообщение так, как его увидят клиенты. Получателей: { $total }. Отправить?
button-broadcast-send = ✅ Отправить
button-broadcast-cancel = ✖ Отменить
admin-broadcast-started = Отправляем { $total } клиентам, не больше 25 сообщений в секунду. Когда закончим, пришлём отчёт.
admin-broadcast-cancelled = Рассылка отменена.
admin-broadcast-progress = Рассылка: доставлено { $sent } из { $total }, заблокировали бота { $blocked }, ошибок { $failed }, не подтверждено { $unconfirmed }.
admin-broadcast-report = Рассылка завершена: доставлено { $sent } из { $total }, заблокировали бота { $blocked }, ошибок { $failed }, не подтверждено { $unconfirmed }.
button-broadcast-progress = 🔄 Ход рассылки
button-admin-promos = 🎟 Промокоды
button-promo-new = ➕ Новый код
button-promo-off = Выключить { $code }
admin-promo-empty = Промокодов пока нет.
admin-promo-on = вкл
admin-promo-state-off = выкл
admin-promo-prompt = Пришлите новый код: КОД 20% для скидки или КОД +7d для бонусных дней, затем, по желанию, число использований и срок действия в днях (например, SPRING 20% 100 30).
admin-promo-invalid = Это не строка промокода. Пример: SPRING 20% 100 30 или GIFT +7d.
admin-promo-created = Промокод создан: { $line }
admin-promo-refused = Промокод не создан: { $reason }
admin-promo-off = Промокод выключен.
button-admin-plans = 🗂 Тарифы
button-admin-gateways = 💳 Платёжные системы
button-plan-prices = 💲 Изменить цены
button-plan-new = ➕ Новый тариф
button-plan-retire = Снять с продажи
button-plan-sell = Вернуть в продажу
admin-plan-on-sale = в продаже
admin-plan-retired = снят с продажи
admin-plan-prices-prompt = Пришлите код тарифа и новые цены, например: pro_30 9.99 USD 899 RUB 500 XTR.
admin-plan-new-prompt = Пришлите новый тариф: уровень, дни (30, 90, 180 или 365), устройства, трафик в ГБ (0 — без ограничений) и цены, например: pro 30 5 0 9.99 USD 899 RUB 500 XTR.
admin-plan-invalid = Это не строка тарифа. Цены — суммы с валютами, например: 9.99 USD 899 RUB 500 XTR.
admin-plan-refused = Тариф не сохранён: { $reason }
admin-gateway-unconfigured = не настроена
admin-gateway-on = включена
admin-gateway-off = выключена
button-gateway-on = Включить { $gateway }
button-gateway-off = Выключить { $gateway }
button-admin-notices = 📝 Уведомления
admin-notices = Уведомления клиентам по языкам (✎ — изменены). Выберите, чтобы изменить текст.
admin-notice-prompt = { $kind } ({ $language }) сейчас:
    { $text }
    Подстановки: { $placeholders }
    Пришлите новый текст или «default», чтобы вернуть встроенный.
admin-notice-saved = Сохранено. Клиенты получат: { $text }
admin-notice-refused = Не сохранено: { $reason }
button-promo-enter = 🎟 У меня есть промокод
plans-promo-prompt = Пришлите промокод.
plans-promo-refused = Этот код нельзя применить: { $reason }
plans-promo-applied = Код { $code } принят для { $plan }: { $benefit }. Выберите способ оплаты:
button-invites = 🎟 Приглашения
button-redeem-invite = 🎁 У меня есть код приглашения
command-invites = Коды приглашений
invites-none = У вас пока нет кодов приглашений. Каждая покупка тарифа приносит коды, которые дают друзьям бесплатные дни, а вы получаете дополнительные дни, когда друг оформит подписку.
invites-title = Ваши коды приглашений: доступно { $count }. Каждый даёт другу бесплатные дни; когда друг впервые оплатит, вы получите бонусные дни.
invites-code = { $code } — { $days } дн., действует до { $until }
    { $link }
invite-prompt = Пришлите полученный код приглашения.
invite-redeemed = Приглашение принято: { $days } бесплатных дн., подписка действует до { $until }. Откройте конфигурацию, чтобы подключиться.
button-loyalty = ⭐ Лояльность
command-loyalty = Мой уровень лояльности
loyalty-status = ⭐ Ваш уровень лояльности: { $level } (оплачено дней подряд: { $days }).
loyalty-next = До уровня { $level } осталось оплатить дней: { $days }. Длинные тарифы приближают его быстрее.
loyalty-top = Это высший уровень. Спасибо, что вы с нами!
loyalty-perk-priority-support = ✔ Приоритетная поддержка
loyalty-perk-early-access = ✔ Ранний доступ к новым функциям
loyalty-perk-premium-squad = ✔ Премиум-серверы
loyalty-grace = Оплаченная подписка закончилась: уровень сохранится до { $until }. Продлите её до этого срока, чтобы не потерять его.
loyalty-bonus = Получено бонусных дней: { $days }.
loyalty-level-bronze = Бронза
loyalty-level-silver = Серебро
loyalty-level-gold = Золото
loyalty-level-platinum = Платина
button-mini-app = 📱 Открыть приложение
