"""Deterministic synthetic consumers, accounts and transactions.

Consumer number i of seed s is a pure function of (s, i, end): any chunk can be generated on its own, in any
order or process, and the same rows come out. Each consumer carries a hidden risk that drives late repayment
and default, so "90+ days past due within 12 months after an as-of date" is a real, learnable outcome; the
risk itself is never written to the database.

Times are whole seconds since the Unix epoch; amounts are whole fen (CNY cents). Writers format them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
DAY = 86_400
HISTORY_DAYS = 730  # two years of transactions before the end date

# --- Geography: provinces with real division codes, weighted by population ---------------------------
# (province, English name, weight, [(city, English name, [district codes])])
PROVINCES: list[tuple[str, str, int, list[tuple[str, str, list[str]]]]] = [
    (
        "广东",
        "Guangdong",
        9,
        [
            ("广州", "Guangzhou", ["440103", "440104", "440106"]),
            ("深圳", "Shenzhen", ["440303", "440304", "440305"]),
            ("东莞", "Dongguan", ["441900"]),
            ("佛山", "Foshan", ["440604", "440605"]),
        ],
    ),
    (
        "山东",
        "Shandong",
        7,
        [
            ("济南", "Jinan", ["370102", "370103"]),
            ("青岛", "Qingdao", ["370202", "370203"]),
            ("烟台", "Yantai", ["370602", "370613"]),
        ],
    ),
    (
        "河南",
        "Henan",
        7,
        [
            ("郑州", "Zhengzhou", ["410102", "410103", "410104"]),
            ("洛阳", "Luoyang", ["410302", "410303"]),
            ("南阳", "Nanyang", ["411302"]),
        ],
    ),
    (
        "江苏",
        "Jiangsu",
        6,
        [
            ("南京", "Nanjing", ["320102", "320104"]),
            ("苏州", "Suzhou", ["320505", "320506"]),
            ("无锡", "Wuxi", ["320205", "320206"]),
        ],
    ),
    (
        "四川",
        "Sichuan",
        6,
        [
            ("成都", "Chengdu", ["510104", "510105", "510106", "510107"]),
            ("绵阳", "Mianyang", ["510703"]),
            ("南充", "Nanchong", ["511302"]),
        ],
    ),
    (
        "河北",
        "Hebei",
        5,
        [
            ("石家庄", "Shijiazhuang", ["130102", "130104"]),
            ("保定", "Baoding", ["130602"]),
            ("唐山", "Tangshan", ["130202"]),
        ],
    ),
    (
        "湖南",
        "Hunan",
        5,
        [("长沙", "Changsha", ["430102", "430103", "430104"]), ("衡阳", "Hengyang", ["430405"])],
    ),
    (
        "浙江",
        "Zhejiang",
        5,
        [
            ("杭州", "Hangzhou", ["330102", "330105", "330106"]),
            ("宁波", "Ningbo", ["330203"]),
            ("温州", "Wenzhou", ["330302"]),
        ],
    ),
    ("安徽", "Anhui", 4, [("合肥", "Hefei", ["340102", "340103"]), ("芜湖", "Wuhu", ["340202"])]),
    (
        "湖北",
        "Hubei",
        4,
        [("武汉", "Wuhan", ["420102", "420103", "420106"]), ("宜昌", "Yichang", ["420502"])],
    ),
    ("广西", "Guangxi", 4, [("南宁", "Nanning", ["450102", "450103"]), ("柳州", "Liuzhou", ["450202"])]),
    ("云南", "Yunnan", 3, [("昆明", "Kunming", ["530102", "530103"]), ("曲靖", "Qujing", ["530302"])]),
    ("江西", "Jiangxi", 3, [("南昌", "Nanchang", ["360102", "360103"]), ("赣州", "Ganzhou", ["360702"])]),
    ("辽宁", "Liaoning", 3, [("沈阳", "Shenyang", ["210102", "210103"]), ("大连", "Dalian", ["210202"])]),
    (
        "福建",
        "Fujian",
        3,
        [("福州", "Fuzhou", ["350102", "350103"]), ("厦门", "Xiamen", ["350203", "350206"])],
    ),
    ("陕西", "Shaanxi", 3, [("西安", "Xi'an", ["610102", "610103", "610104"])]),
    ("重庆", "Chongqing", 3, [("重庆", "Chongqing", ["500101", "500103", "500104", "500105", "500106"])]),
    ("贵州", "Guizhou", 3, [("贵阳", "Guiyang", ["520102", "520103"])]),
    ("上海", "Shanghai", 2, [("上海", "Shanghai", ["310101", "310104", "310105", "310115"])]),
    ("北京", "Beijing", 2, [("北京", "Beijing", ["110101", "110102", "110105", "110108"])]),
    ("天津", "Tianjin", 1, [("天津", "Tianjin", ["120101", "120103"])]),
]
PROVINCE_NAMES_EN = {zh: en for zh, en, _w, _c in PROVINCES}
CITY_NAMES_EN = {city: en for _p, _e, _w, cities in PROVINCES for city, en, _codes in cities}


def _build_area_slots() -> list[tuple[str, str, str]]:
    """One slot per (province, city, district code), repeated by province weight.

    A consumer's slot is drawn from a bijection of their index (see _identity_slot), so the repetition is what
    gives provinces their population weights while keeping every resident ID unique.
    """
    slots = []
    for province, _en, weight, cities in PROVINCES:
        codes = [(city, code) for city, _cen, city_codes in cities for code in city_codes]
        for k in range(weight * 4):
            city, code = codes[k % len(codes)]
            slots.append((province, city, code))
    return slots


AREA_SLOTS = _build_area_slots()
BIRTH_YEARS = 45  # adults aged 20 to 64 at the end date
SEQUENCE_NUMBERS = 1000
IDENTITY_SPACE = len(AREA_SLOTS) * BIRTH_YEARS * 365 * SEQUENCE_NUMBERS
_IDENTITY_MULTIPLIER = (
    1_000_000_007  # prime, coprime with IDENTITY_SPACE: i -> (a*i + b) mod N is a bijection
)

RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK = "10X98765432"


def resident_id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character (ISO 7064 MOD 11-2) for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK[total % 11]


def resident_id_is_valid(value: str) -> bool:
    return (
        len(value) == 18
        and value[:17].isdigit()
        and value[17] in "0123456789X"
        and resident_id_check_digit(value[:17]) == value[17]
    )


MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "180",
    "181",
    "182",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
)
PHONE_SPACE = len(MOBILE_PREFIXES) * 100_000_000
_PHONE_MULTIPLIER = 2_147_483_647  # prime, coprime with PHONE_SPACE

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程魏苏吕丁任沈姚卢"
)
GIVEN_CHARS = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国文辉鑫宇浩然子涵欣怡梓轩佳琪思雨博文晨阳俊熙"
)

PUBLIC_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# --- Merchants -----------------------------------------------------------------------------------------
# (category, share of payments, median amount in yuan, spread of log amount, name stems)
CATEGORIES: list[tuple[str, float, float, float, str]] = [
    ("groceries", 0.22, 60, 0.7, "鲜丰 联华 永辉 华润万家 物美 盒马 每日优鲜 大润发"),
    ("dining", 0.20, 45, 0.6, "老乡鸡 海底捞 西贝 真功夫 喜茶 瑞幸 沙县小吃 兰州拉面"),
    ("transport", 0.10, 18, 0.8, "滴滴出行 地铁 公交 高德打车 中石化 中石油"),
    ("utilities", 0.08, 120, 0.5, "国家电网 中国移动 中国联通 中国电信 自来水 燃气"),
    ("online_retail", 0.14, 150, 0.9, "天猫 京东 拼多多 唯品会 苏宁易购 当当"),
    ("electronics", 0.03, 1800, 0.8, "华为 小米 苏宁电器 国美 vivo OPPO"),
    ("apparel", 0.06, 260, 0.7, "优衣库 李宁 安踏 海澜之家 森马 太平鸟"),
    ("travel", 0.03, 900, 0.9, "携程 飞猪 去哪儿 同程 如家 汉庭"),
    ("healthcare", 0.04, 180, 0.9, "大参林 老百姓大药房 益丰 社区医院 口腔诊所"),
    ("education", 0.03, 600, 0.9, "新东方 学而思 网易有道 猿辅导 驾校"),
    ("entertainment", 0.04, 90, 0.7, "万达影城 大麦 腾讯视频 爱奇艺 KTV"),
    ("gaming", 0.03, 70, 1.0, "王者荣耀 和平精英 原神 网易游戏 斗鱼"),
]
MERCHANTS_PER_CATEGORY = 40


@dataclass(frozen=True, slots=True)
class MerchantRow:
    index: int
    code: str
    name: str
    category: str


def merchants() -> list[MerchantRow]:
    """The fixed merchant list (the same for every seed): MERCHANTS_PER_CATEGORY per category."""
    rng = random.Random(20_240_101)
    rows: list[MerchantRow] = []
    for category, _share, _median, _spread, stems in CATEGORIES:
        stem_list = stems.split()
        for k in range(MERCHANTS_PER_CATEGORY):
            city = rng.choice(AREA_SLOTS)[1]
            stem = stem_list[k % len(stem_list)]
            index = len(rows)
            rows.append(
                MerchantRow(
                    index, f"M{index + 1:06d}", f"{stem}（{city}{k // len(stem_list) + 1}店）", category
                )
            )
    return rows


# --- Segments ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SegmentSpec:
    slug: str
    name: str
    name_zh: str
    kind: str  # a Segment.Kind value
    description: str


SEGMENTS = [
    SegmentSpec(
        "chengdu-chongqing-consumer-finance",
        "Chengdu–Chongqing consumer-finance loans",
        "成渝消费金融贷款",
        "product_line",
        "Instalment and cash loans to residents of Chongqing and Sichuan.",
    ),
    SegmentSpec(
        "yangtze-river-delta",
        "Yangtze River Delta residents",
        "长三角地区居民",
        "region",
        "Consumers living in Shanghai, Jiangsu, Zhejiang or Anhui.",
    ),
    SegmentSpec(
        "revolving-credit",
        "Revolving credit lines, nationwide",
        "全国循环信用额度",
        "product_line",
        "Every consumer with a revolving credit line.",
    ),
    SegmentSpec(
        "cash-loans",
        "Cash loans, nationwide",
        "全国现金贷款",
        "product_line",
        "Every consumer with a cash loan.",
    ),
    SegmentSpec(
        "young-borrowers",
        "Borrowers under 30",
        "30岁以下借款人",
        "product_line",
        "Consumers under 30 with any credit product.",
    ),
    SegmentSpec(
        "greater-bay-area",
        "Greater Bay Area residents (Guangdong)",
        "粤港澳大湾区（广东）居民",
        "region",
        "Consumers living in Guangdong.",
    ),
    SegmentSpec(
        "case-2026-017",
        "Case 2026-017: disputed repayment records",
        "案件 2026-017：还款记录争议",
        "case_list",
        "Borrowers named in a complaint about repayment records.",
    ),
]

PRODUCTS = ("wallet", "credit_line", "instalment_loan", "cash_loan", "money_fund", "insurance")
CREDIT_PRODUCTS = frozenset(("credit_line", "instalment_loan", "cash_loan"))


# --- Generated rows ------------------------------------------------------------------------------------
@dataclass(slots=True)
class AccountRow:
    slot: int  # index into PRODUCTS: a consumer has at most one account of each product
    product: str
    credit_limit: int | None  # fen
    balance: int  # fen
    opened_on: date
    status: str


# (account slot, kind, amount in fen, merchant index or None, epoch seconds, channel, due date or None,
#  days late or None)
TxnRow = tuple[int, str, int, int | None, int, str, date | None, int | None]


@dataclass(slots=True)
class ConsumerRow:
    index: int
    public_id: str
    name: str
    resident_id: str
    phone: str
    province: str
    city: str
    birth_year: int
    joined_on: date
    status: str
    segments: list[str]
    accounts: list[AccountRow]
    transactions: list[TxnRow]
    # Ground truth, never stored: the hidden annual default probability and the day default began.
    risk: float = field(repr=False, default=0.0)
    default_day: date | None = field(repr=False, default=None)


def _identity_slot(seed: int, index: int, space: int, multiplier: int) -> int:
    offset = (seed * 7_919 + 12_345) % space
    return (multiplier * index + offset) % space


def _poisson(rng: random.Random, lam: float) -> int:
    threshold, k, p = math.exp(-lam), 0, rng.random()
    while p > threshold:
        k += 1
        p *= rng.random()
    return k


def _month_starts(first: date, end: date) -> Iterator[date]:
    current = first.replace(day=1)
    while current < end:
        yield current
        current = (current + timedelta(days=32)).replace(day=1)


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, 28))


def epoch_of(day: date) -> int:
    """Seconds since the epoch at midnight, Shanghai time, of a calendar day."""
    return int(datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).timestamp())


_CATEGORY_WEIGHTS = [c[1] for c in CATEGORIES]
_CATEGORY_CUM = [sum(_CATEGORY_WEIGHTS[: i + 1]) for i in range(len(CATEGORIES))]
_CHANNELS_PAYMENT = ("qr_code", "qr_code", "app", "online", "pos")


def generate_consumer(seed: int, index: int, end: date) -> ConsumerRow:
    """Consumer `index` of world `seed`, with transactions over the HISTORY_DAYS before `end` (exclusive)."""
    if index < 0 or index >= IDENTITY_SPACE:
        raise ValueError(f"consumer index {index} outside 0..{IDENTITY_SPACE - 1}")
    rng = random.Random((seed << 40) | index)
    rand, randint, gauss, choice, expo = rng.random, rng.randint, rng.gauss, rng.choice, rng.expovariate

    # Identity: area, birth date and sequence come from a bijection of the index, so IDs never collide.
    slot = _identity_slot(seed, index, IDENTITY_SPACE, _IDENTITY_MULTIPLIER)
    slot, sequence = divmod(slot, SEQUENCE_NUMBERS)
    slot, day_of_year = divmod(slot, 365)
    area_index, year_offset = divmod(slot, BIRTH_YEARS)
    province, city, area_code = AREA_SLOTS[area_index]
    birth_year = end.year - 20 - year_offset
    birthday = date(birth_year, 1, 1) + timedelta(days=day_of_year)
    if birthday.year != birth_year:  # 31 December of a leap year overflows: use 30 December
        birthday = date(birth_year, 12, 30)
    first17 = f"{area_code}{birthday:%Y%m%d}{sequence:03d}"
    resident_id = first17 + resident_id_check_digit(first17)
    phone_slot = _identity_slot(seed, index, PHONE_SPACE, _PHONE_MULTIPLIER)
    prefix, number = divmod(phone_slot, 100_000_000)
    phone = f"{MOBILE_PREFIXES[prefix]}{number:08d}"
    bits = rng.getrandbits(80)
    public_id = "C" + "".join(PUBLIC_ID_ALPHABET[(bits >> (5 * k)) & 31] for k in range(16))
    surname = choice(SURNAMES)
    given = choice(GIVEN_CHARS) + (choice(GIVEN_CHARS) if rand() < 0.7 else "")
    name = surname + given
    age = end.year - birth_year

    # Hidden risk: an annual probability of default, worse for the young.
    z = gauss(0.0, 1.0)
    risk = 1.0 / (
        1.0 + math.exp(-(-4.0 + 2.1 * z + (0.45 if age < 26 else 0.0) - (0.25 if age > 45 else 0.0)))
    )

    window_start = end - timedelta(days=HISTORY_DAYS)
    tenure = int(expo(1 / 1100)) + 45
    joined_on = end - timedelta(days=min(tenure, 3650))
    history_start = max(joined_on, window_start)
    history_days = (end - history_start).days

    # Products: riskier consumers borrow more cash, save less, and take credit more recently.
    accounts: list[AccountRow] = [AccountRow(0, "wallet", None, 0, joined_on, "open")]
    sig = 1.0 / (1.0 + math.exp(-z))

    def opened(recent_bias: float) -> date:
        span = max((end - joined_on).days - 20, 1)
        back = int(span * (rand() ** (1.0 + recent_bias)))
        return end - timedelta(days=back + 20)

    if rand() < 0.55:
        limit = choice((2_000, 5_000, 8_000, 10_000, 15_000, 20_000, 30_000, 50_000))
        limit = max(1_000, int(limit * (1.3 - 0.8 * sig)) // 500 * 500)
        accounts.append(AccountRow(1, "credit_line", limit * 100, 0, opened(2.0 * sig), "open"))
    if rand() < 0.30:
        accounts.append(AccountRow(2, "instalment_loan", None, 0, opened(1.5 * sig), "open"))
    if rand() < 0.12 + 0.25 * sig:
        accounts.append(AccountRow(3, "cash_loan", None, 0, opened(3.0 * sig), "open"))
    if rand() < 0.50 - 0.30 * sig:
        accounts.append(AccountRow(4, "money_fund", None, 0, opened(0.0), "open"))
    if rand() < 0.35 - 0.15 * sig:
        accounts.append(AccountRow(5, "insurance", None, 0, opened(0.0), "open"))
    products = {a.product: a for a in accounts}
    has_credit = any(p in CREDIT_PRODUCTS for p in products)

    # Default: a monthly hazard from the annual probability; once in default, every instalment is 90+ late.
    default_day: date | None = None
    if has_credit:
        monthly = 1.0 - (1.0 - risk) ** (1 / 12)
        for month in _month_starts(history_start, end):
            if rand() < monthly:
                default_day = month + timedelta(days=randint(0, 27))
                break
    late_probability = min(0.7, 0.01 + 3.5 * risk)
    late_scale = 3.0 + 40.0 * risk

    txns: list[TxnRow] = []
    add = txns.append
    end_epoch = epoch_of(end)
    start_epoch = epoch_of(history_start)
    util = min(0.95, max(0.02, 0.1 + 0.7 * sig + gauss(0.0, 0.08)))
    income = max(1_500, int((9_000 - 5_000 * sig) * math.exp(gauss(0.0, 0.35))))

    def repay(slot_: int, amount: int, due: date) -> int:
        """Add a repayment of an instalment due on `due`; return days late (or -1 if not yet repaid)."""
        if default_day is not None and due >= default_day:
            days_late = 90 + int(expo(1 / 45))
        elif default_day is not None and (default_day - due).days < 240 and rand() < 0.7:
            # Roll rates: in the months before default, payments slip further and further.
            days_late = min(89, 5 + int(expo(1 / 25)))
        elif rand() < late_probability:
            days_late = min(89, 1 + int(expo(1 / late_scale)))
        else:
            days_late = 0
        paid = epoch_of(due) + days_late * DAY + randint(8 * 3600, 22 * 3600)
        if paid >= end_epoch:
            return -1  # still outstanding at the end date: nothing happened yet
        add(
            (
                slot_,
                "repayment",
                amount,
                None,
                paid,
                "auto_debit" if days_late == 0 else "app",
                due,
                days_late,
            )
        )
        if days_late > 0:
            fee = min(amount // 20 + 500, 5_000 + days_late * 100)
            add((slot_, "fee", fee, None, paid + 1, "auto_debit", None, None))
        return days_late

    # Everyday spending, income and transfers.
    credit_line = products.get("credit_line")
    cl_start = epoch_of(credit_line.opened_on) if credit_line else 0
    cl_monthly_spend: dict[date, int] = {}
    payments = _poisson(rng, 1.05 * history_days / 30.4)
    for _ in range(payments):
        when = start_epoch + int(rand() * (end_epoch - start_epoch))
        u = rand()
        cat = 0
        while _CATEGORY_CUM[cat] < u * _CATEGORY_CUM[-1]:
            cat += 1
        category = CATEGORIES[cat]
        if cat == len(CATEGORIES) - 1 and rand() > 0.3 + sig:  # gaming skews to the risky
            cat, category = 0, CATEGORIES[0]
        amount = max(100, int(category[2] * 100 * math.exp(gauss(0.0, category[3]))))
        merchant = cat * MERCHANTS_PER_CATEGORY + int(rand() * MERCHANTS_PER_CATEGORY)
        if credit_line is not None and when >= cl_start and rand() < 0.35 + 0.5 * util:
            slot_ = 1
            month = datetime.fromtimestamp(when, SHANGHAI).date().replace(day=1)
            cl_monthly_spend[month] = cl_monthly_spend.get(month, 0) + amount
        else:
            slot_ = 0
        add((slot_, "payment", amount, merchant, when, choice(_CHANNELS_PAYMENT), None, None))
    for _ in range(_poisson(rng, 0.35 * history_days / 30.4)):
        when = start_epoch + int(rand() * (end_epoch - start_epoch))
        add((0, "transfer_in", int(income * 100 * (0.5 + rand())), None, when, "bank_transfer", None, None))
    for _ in range(_poisson(rng, 0.2 * history_days / 30.4)):
        when = start_epoch + int(rand() * (end_epoch - start_epoch))
        add((0, "transfer_out", max(1_000, int(income * 30 * rand())), None, when, "app", None, None))

    # Revolving credit: drawn up to the utilisation target, each month's spend repaid on the 10th after.
    if credit_line is not None and credit_line.credit_limit:
        limit_fen = credit_line.credit_limit
        for month in _month_starts(max(credit_line.opened_on, history_start), end):
            spent = cl_monthly_spend.get(month, 0)
            top_up = int(limit_fen * util * (0.2 + 0.3 * rand()))
            if top_up > 0:
                # Spending outside the sampled payments: one aggregated online purchase per month.
                when = max(epoch_of(month), cl_start) + randint(0, 27 * DAY)
                if when < end_epoch:
                    add(
                        (
                            1,
                            "payment",
                            top_up,
                            4 * MERCHANTS_PER_CATEGORY + randint(0, MERCHANTS_PER_CATEGORY - 1),
                            when,
                            "online",
                            None,
                            None,
                        )
                    )
                    spent += top_up
            if spent:
                due = _add_months(month, 1).replace(day=10)
                repay(1, spent, due)
        credit_line.balance = int(limit_fen * util)

    # Instalment and cash loans: disbursed when opened, repaid monthly.
    for slot_, product, principal_range, terms in (
        (2, "instalment_loan", (3_000, 40_000), (6, 12, 24)),
        (3, "cash_loan", (1_000, 20_000), (3, 6, 12)),
    ):
        loan = products.get(product)
        if loan is None:
            continue
        principal = randint(*principal_range) // 100 * 100 * 100
        term = choice(terms)
        loan.credit_limit = principal
        outstanding = principal
        instalment = int(principal * (1.0 + 0.012 * term)) // term
        if loan.opened_on >= history_start:
            add(
                (
                    slot_,
                    "loan_disbursement",
                    principal,
                    None,
                    epoch_of(loan.opened_on) + randint(9 * 3600, 20 * 3600),
                    "app",
                    None,
                    None,
                )
            )
        for k in range(1, term + 1):
            due = _add_months(loan.opened_on, k)
            if due >= end:
                break
            if due < history_start:
                outstanding -= principal // term
                continue
            if repay(slot_, instalment, due) >= 0:
                outstanding -= principal // term
        loan.balance = max(0, outstanding)
        if loan.balance == 0:
            loan.status = "closed"

    # Savings and insurance.
    fund = products.get("money_fund")
    if fund is not None:
        fund_start = epoch_of(max(fund.opened_on, history_start))
        held = 0
        for _ in range(_poisson(rng, 0.25 * max(0, (end_epoch - fund_start) // DAY) / 30.4)):
            when = fund_start + int(rand() * (end_epoch - fund_start))
            amount = int(income * 100 * (0.1 + 0.6 * rand()))
            if held > amount and rand() < 0.35:
                held -= amount
                add((4, "fund_redeem", amount, None, when, "app", None, None))
            else:
                held += amount
                add((4, "fund_buy", amount, None, when, "app", None, None))
        fund.balance = held
    insurance = products.get("insurance")
    if insurance is not None:
        premium = randint(30, 400) * 100
        for month in _month_starts(max(insurance.opened_on, history_start), end):
            when = epoch_of(month.replace(day=min(insurance.opened_on.day, 28))) + 10 * 3600
            if start_epoch <= when < end_epoch:
                add((5, "insurance_premium", premium, None, when, "auto_debit", None, None))

    if default_day is not None:
        for account in accounts:
            if account.product in CREDIT_PRODUCTS and account.status == "open":
                account.status = "delinquent"
    accounts[0].balance = max(0, int(income * 100 * rand()))
    txns.sort(key=lambda t: t[4])

    # Segment membership follows from who the consumer is; the case list is a small random sample.
    has_loan = "instalment_loan" in products or "cash_loan" in products
    segments = []
    if province in ("重庆", "四川") and has_loan:
        segments.append("chengdu-chongqing-consumer-finance")
    if province in ("上海", "江苏", "浙江", "安徽"):
        segments.append("yangtze-river-delta")
    if credit_line is not None:
        segments.append("revolving-credit")
    if "cash_loan" in products:
        segments.append("cash-loans")
    if age < 30 and has_credit:
        segments.append("young-borrowers")
    if province == "广东":
        segments.append("greater-bay-area")
    if has_loan and rand() < 0.04:
        segments.append("case-2026-017")

    status = "frozen" if default_day is not None and rand() < 0.2 else "active"
    return ConsumerRow(
        index,
        public_id,
        name,
        resident_id,
        phone,
        province,
        city,
        birth_year,
        joined_on,
        status,
        segments,
        accounts,
        txns,
        risk,
        default_day,
    )


def generate(seed: int, start: int, count: int, end: date) -> Iterator[ConsumerRow]:
    """Consumers start..start+count-1 of world `seed`."""
    for index in range(start, start + count):
        yield generate_consumer(seed, index, end)


def defaulted_within(consumer: ConsumerRow, as_of: date, months: int = 12) -> bool:
    """The outcome SPEC §5 scores against, read from the rows: a repayment due in the `months` after `as_of`
    that was paid 90 or more days late."""
    horizon = _add_months(as_of, months)
    return any(
        t[1] == "repayment" and t[6] is not None and as_of < t[6] <= horizon and (t[7] or 0) >= 90
        for t in consumer.transactions
    )


def default_end_date(today: date | None = None) -> date:
    """The first day of the current month in Shanghai: data ends there, so a run repeats within a month."""
    today = today or datetime.now(UTC).astimezone(SHANGHAI).date()
    return today.replace(day=1)
