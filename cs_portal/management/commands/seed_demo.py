"""Demo data: the logins of API.md, with orders, shipments, tickets and chats.

Idempotent: a second run changes nothing (it only prints the logins);
``--tickets N`` adds N more tickets in bulk for benchmarks.

The demo logins share a published password, so the command refuses a
production settings module (``DEBUG`` off) unless told the database is a
demo one (``--demo-database``, or ``SEED_DEMO_DATABASE=1`` in the environment
for a harness that cannot pass the flag: benchmarks and rehearsals on
production settings).
"""

from __future__ import annotations

import os
import random
from datetime import timedelta

from django.contrib.auth.hashers import make_password
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.roles import AGENT, BUYER, HEAD, MERCHANT_STAFF, SUPERVISOR, ensure_role_groups
from accounts.services import create_user
from compensation import services as compensation
from core.errors import DomainError
from merchants import services as merchant_services
from merchants.models import Merchant, MerchantStaff, Order, Shipment, ShipmentEvent, VariantStock
from reports.services import refresh_rollups
from tickets import services as ticket_services
from tickets import search, sla
from tickets.models import (
    AgentProfile,
    AgentSkill,
    Category,
    Channel,
    Message,
    Playbook,
    Queue,
    QuickReply,
    RoutingRule,
    Ticket,
    TicketEvent,
    WorkSession,
)

PASSWORD = "demo12345"

AGENTS = [("agent1", "王芳"), ("agent2", "李娜"), ("agent3", "张伟"), ("agent4", "刘洋"), ("agent5", "陈静")]
LEAD = ("lead1", "赵敏")  # the team lead (tier 2): the supervisor role
HEAD_OF_SERVICE = ("head1", "孙立")  # the head (tier 3 and all levels)
MERCHANTS = [
    ("M001", "优品数码旗舰店", "孙磊"),
    ("M002", "江南丝绸家纺", "周婷"),
    ("M003", "鲜果时光生鲜", "吴强"),
]
BUYERS = [
    "林晓雨", "黄志强", "杨丽", "何俊", "郭静怡", "马超", "罗敏", "梁宇", "宋佳", "郑浩",
    "谢婷婷", "韩磊", "唐悦", "冯晨", "董欣", "萧然", "程雪", "曹阳", "袁梦", "邓凯",
]
GOODS = {
    "M001": [("无线蓝牙耳机", "白色", 19900), ("快充数据线 1m", "黑色", 2990), ("手机壳", "透明", 3900),
             ("机械键盘", "青轴", 29900), ("充电宝 10000mAh", "粉色", 8900)],
    "M002": [("真丝枕套", "香槟色", 12800), ("四件套 1.8m", "雾霾蓝", 45900), ("蚕丝被", "200×230", 89900),
             ("丝巾", "墨绿", 6800)],
    "M003": [("烟台红富士 5斤", "特级", 3990), ("赣南脐橙 10斤", "大果", 5990), ("丹东草莓 3斤", "99红颜", 8900),
             ("海南芒果 5斤", "贵妃芒", 4590)],
}
CARRIERS = ["顺丰速运", "中通快递", "圆通速递", "韵达快递", "京东物流", "申通快递", "EMS"]
REGIONS = [
    ("浙江省杭州市西湖区文三路 90 号", "浙江"), ("上海市浦东新区张杨路 500 号", "上海"),
    ("广东省深圳市南山区科技园", "广东"), ("北京市朝阳区建国路 88 号", "北京"),
    ("四川省成都市武侯区天府大道", "四川"), ("湖北省武汉市洪山区珞喻路", "湖北"),
]
ROUTE = ["【{city}】快件已揽收", "【{city}】已发往分拨中心", "【转运中心】快件已到达", "【{city}】派件中，快递员电话 138****0000"]

QUICK_REPLIES = [
    ("hello", "问候", "", "您好{buyer_name}，我是客服{agent_name}，很高兴为您服务，请问有什么可以帮您？"),
    ("delay", "物流延迟致歉", Category.LOGISTICS_DELAY,
     "{buyer_name}您好，非常抱歉您的订单 {order_no} 物流有所延迟。包裹由{carrier}承运（单号 {tracking_no}），预计 {eta} 送达，我们会持续跟进。"),
    ("track", "物流信息", "", "您的订单 {order_no} 由{carrier}配送，运单号 {tracking_no}，预计 {eta} 送达。"),
    ("lost", "包裹丢失处理", Category.NOT_RECEIVED,
     "{buyer_name}您好，已为您向{carrier}发起丢件核查（单号 {tracking_no}），24 小时内给您答复，核实丢失将为您补发或退款。"),
    ("refund", "退款进度", Category.REFUND_REQUEST, "您好，订单 {order_no} 的退款已提交，原路退回预计 1-3 个工作日到账。"),
    ("damaged", "破损取证", Category.PARCEL_DAMAGED, "很抱歉商品受损，麻烦您拍一下外包装和商品破损处的照片发给我们，我们马上为您处理。"),
    ("change", "改地址", Category.ORDER_CHANGE, "您好，订单 {order_no} 还未发货，已为您修改收货信息，请核对。"),
    ("bye", "结束语", "", "感谢您的耐心，祝您生活愉快！如还有问题随时联系我们。"),
]
QUICK_REPLIES_EN = [
    ("en-hello", "Greeting", "", "Hello {buyer_name}, this is {agent_name}. How can I help you today?"),
    ("en-track", "Tracking", "", "Your order {order_no} ships with {carrier}, tracking no. {tracking_no}, expected {eta}."),
]
PLAYBOOKS = [
    ("物流延迟：安抚与催件", Category.LOGISTICS_DELAY,
     "1. 查看物流轨迹，确认最后一次更新时间。\n2. 超过 48 小时无更新：联系承运商催件，并在工单记录催件单号。\n3. 用“物流延迟致歉”快捷回复告知预计送达时间。\n4. 若超过承诺时效，可发放 ¥5 无门槛券安抚。"),
    ("包裹丢失：核查、补发或退款", Category.NOT_RECEIVED,
     "1. 向承运商发起丢件核查。\n2. 24 小时内无结果：要求商家补发（强制补发任务 48 小时）。\n3. 商家拒绝或超时：全额退款 + ¥5 券。"),
    ("错发漏发：取证与补寄", Category.WRONG_ITEM,
     "1. 请买家拍照：收到的商品与订单截图。\n2. 转商家确认（等待商家）。\n3. 商家确认后补寄，原商品退回运费由商家承担。"),
    ("账号被盗：冻结与核验", Category.ACCOUNT_SECURITY,
     "1. 立即冻结账号并取消未完成预约。\n2. 请用户提供注册手机号、身份证后四位。\n3. 核验通过后解冻，提醒修改密码。"),
]

TICKET_SCENARIOS = [
    # category, channel, subject, body, end state, grade
    (Category.LOGISTICS_DELAY, Channel.CHAT, "快递三天没动了", "我的快递已经三天没有更新物流了，什么时候能到？", "assigned", "3"),
    (Category.NOT_RECEIVED, Channel.WEB, "显示签收但没收到", "物流显示已签收，但我家里没人收到包裹。", "open", "3"),
    (Category.PARCEL_DAMAGED, Channel.CHAT, "水果坏了一半", "收到的芒果有一半都烂了，箱子也压扁了。", "waiting_buyer", "3"),
    (Category.WRONG_ITEM, Channel.WEB, "发错颜色了", "我买的是白色，收到的是黑色。", "waiting_merchant", "3"),
    (Category.REFUND_REQUEST, Channel.WEB, "申请退款", "不想要了，还没发货，请帮我退款。", "resolved", "3"),
    (Category.ORDER_CHANGE, Channel.CHAT, "改一下收货地址", "地址写错了，麻烦改成公司地址。", "closed", "3"),
    (Category.COUPON_FAILURE, Channel.WEB, "优惠券用不了", "双十一领的满减券结算时提示不可用。", "open", "3"),
    (Category.ACCOUNT_SECURITY, Channel.PHONE, "账号被盗下单", "我很久没登录，今天发现账号里多了好几个订单。", "assigned", "1"),
    (Category.LOGISTICS_DELAY, Channel.API, "区域积压：华东仓超 20 件", "华东分拨中心积压，多位买家反映未更新。", "open", "2"),
    (Category.NOT_RECEIVED, Channel.WEB, "包裹被扣", "物流显示包裹被海关扣押。", "assigned", "special"),
]


class Command(BaseCommand):
    help = "Load demo data (idempotent). --tickets N adds N tickets in bulk for benchmarks."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tickets", type=int, default=0, help="add this many extra tickets in bulk")
        parser.add_argument("--seed", type=int, default=11, help="random seed")
        parser.add_argument(
            "--demo-database", action="store_true",
            help="run with DEBUG off: I know this database is a demo one (the demo logins' password is public)",
        )

    def handle(self, *args, tickets: int = 0, seed: int = 11, demo_database: bool = False, **options) -> None:
        demo_database = demo_database or os.environ.get("SEED_DEMO_DATABASE") == "1"
        if not settings.DEBUG and not demo_database:
            raise CommandError(
                "Refusing to load demo data with DEBUG off: it creates staff logins with the published password "
                f"{PASSWORD!r}. If this database is a demo one, run again with --demo-database "
                "(or SEED_DEMO_DATABASE=1)."
            )
        rng = random.Random(seed)
        if not User.objects.filter(username="agent1").exists():
            self._seed_base(rng)
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        else:
            self.stdout.write("Demo data already present; nothing changed.")
        if tickets:
            made = bulk_tickets(tickets, rng=rng)
            self.stdout.write(self.style.SUCCESS(f"Added {made} tickets."))
        self._print_logins()
        seed_risk(self.stdout)
        seed_incident(self.stdout)
        # the demo's rows are dated in the past: the reports' closed days are
        # recomputed from them (the rollup would otherwise keep what it had)
        refresh_rollups(rebuild=True)

    def _print_logins(self) -> None:
        self.stdout.write(
            "\nLogins (password demo12345):\n"
            "  agents      agent1 … agent5\n"
            "  supervisor  lead1 (team lead)\n"
            "  head        head1 (head of service)\n"
            "  merchants   merchant1 … merchant3\n"
            "  buyers      buyer1 … buyer20\n"
            "Console http://127.0.0.1:8000/console/  ·  API docs http://127.0.0.1:8000/api/docs/\n"
        )

    def _seed_base(self, rng: random.Random) -> None:
        with transaction.atomic():
            ensure_role_groups()
            queues = self._queues()
            agents = [create_user(username=u, password=None, role=AGENT, display_name=n) for u, n in AGENTS]
            lead = create_user(username=LEAD[0], password=None, role=SUPERVISOR, display_name=LEAD[1])
            head = create_user(username=HEAD_OF_SERVICE[0], password=None, role=HEAD,
                               display_name=HEAD_OF_SERVICE[1])
            merchants = []
            for i, (code, name, staff_name) in enumerate(MERCHANTS, start=1):
                merchant = Merchant.objects.create(code=code, name=name, contact_phone=f"0571-8888{i:04d}")
                staff = create_user(username=f"merchant{i}", password=None, role=MERCHANT_STAFF, display_name=staff_name)
                MerchantStaff.objects.create(user=staff, merchant=merchant)
                merchants.append(merchant)
            buyers = [
                create_user(username=f"buyer{i}", password=None, role=BUYER, display_name=name, phone=f"139{i:08d}")
                for i, name in enumerate(BUYERS, start=1)
            ]
            self._agents(agents + [lead, head])
            self._knowledge(lead)
            del queues
            # hash the demo password once, not 29 times
            User.objects.filter(pk__in=[u.pk for u in [*agents, lead, head, *buyers]] + list(
                MerchantStaff.objects.values_list("user_id", flat=True))).update(password=make_password(PASSWORD))
        # orders, tickets and money go through the real services (each its own transaction)
        orders = self._orders(rng, buyers, merchants)
        self._stock(rng, orders)
        self._tickets(rng, agents, lead, orders)
        self._money(rng, agents, lead, merchants, buyers)
        self._remedies(agents)

    def _queues(self) -> dict[str, Queue]:
        specs = [
            ("general", "综合咨询", "未匹配到规则的工单"),
            ("logistics", "物流异常", "延迟、丢件、破损"),
            ("aftersales", "退款售后", "退款、错发漏发"),
            ("merchant", "商家服务", "商家提现与纠纷"),
            ("security", "账号安全", "盗号与风控"),
            ("escalations", "重大事件", "一级、特级事件，负责人督办"),
            ("english", "English desk", "English-speaking buyers"),
        ]
        queues = {code: Queue.objects.create(code=code, name=name, description=desc) for code, name, desc in specs}
        rules = [
            (5, {"language": "en"}, "english"),
            (10, {"grade": sla.GRADE_SPECIAL}, "escalations"),
            (11, {"grade": sla.GRADE_SEVERE}, "escalations"),
            (20, {"category": Category.ACCOUNT_SECURITY}, "security"),
            (30, {"party": "merchant"}, "merchant"),
            (40, {"category": Category.LOGISTICS_DELAY}, "logistics"),
            (41, {"category": Category.NOT_RECEIVED}, "logistics"),
            (42, {"category": Category.PARCEL_DAMAGED}, "logistics"),
            (50, {"category": Category.REFUND_REQUEST}, "aftersales"),
            (51, {"category": Category.WRONG_ITEM}, "aftersales"),
        ]
        for priority, match, code in rules:
            RoutingRule.objects.create(priority=priority, queue=queues[code], **match)
        return queues

    def _agents(self, staff: list[User]) -> None:
        now = timezone.now()
        all_categories = list(Category.values)
        plans = {
            "agent1": ("online", 5, all_categories, "zh-hans,en", timedelta(hours=2)),
            "agent2": ("online", 4, [Category.LOGISTICS_DELAY, Category.NOT_RECEIVED, Category.PARCEL_DAMAGED,
                                     Category.ORDER_CHANGE], "zh-hans", timedelta(hours=7, minutes=5)),
            "agent3": ("away", 5, [Category.REFUND_REQUEST, Category.WRONG_ITEM, Category.COUPON_FAILURE],
                       "zh-hans", timedelta(hours=3)),
            "agent4": ("offline", 5, all_categories, "zh-hans", None),
            "agent5": ("offline", 3, [Category.ACCOUNT_SECURITY, Category.MERCHANT_PAYOUT, Category.MERCHANT_DISPUTE],
                       "zh-hans,en", None),
            "lead1": ("online", 3, all_categories, "zh-hans,en", timedelta(hours=4)),
            "head1": ("online", 2, all_categories, "zh-hans,en", timedelta(hours=3)),
        }
        for user in staff:
            presence, capacity, skills, languages, worked = plans[user.username]
            profile = AgentProfile.objects.create(
                user=user, presence=presence, capacity=capacity, languages=languages, presence_changed_at=now
            )
            AgentSkill.objects.bulk_create([AgentSkill(profile=profile, category=c) for c in skills])
            if worked is not None:
                ended = None if presence == "online" else now - timedelta(minutes=20)
                WorkSession.objects.create(agent=user, started_at=now - worked, ended_at=ended)

    def _orders(self, rng: random.Random, buyers: list[User], merchants: list[Merchant]) -> list[Order]:
        now = timezone.now()
        orders = []
        n = 0
        for buyer in buyers:
            for _ in range(rng.randint(2, 4)):
                n += 1
                merchant = rng.choice(merchants)
                goods = rng.sample(GOODS[merchant.code], k=rng.randint(1, 2))
                items = [
                    {"sku": f"{merchant.code}-{i}", "name": g[0], "variant": g[1], "qty": rng.randint(1, 2), "price_fen": g[2]}
                    for i, g in enumerate(goods)
                ]
                amount = sum(i["qty"] * i["price_fen"] for i in items)
                placed = now - timedelta(days=rng.randint(0, 12), hours=rng.randint(0, 23))
                address, region = rng.choice(REGIONS)
                status = rng.choices(["paid", "shipped", "delivered", "completed"], weights=[2, 4, 3, 2])[0]
                order = Order.objects.create(
                    order_no=f"DD{placed:%Y%m%d}{n:06d}", buyer=buyer, merchant=merchant, items=items,
                    amount_fen=amount, status="delivered" if status == "completed" else status,
                    shipping_address=f"{address} {buyer.display_name} {buyer.phone}",
                    region=region, placed_at=placed, ship_by=placed + timedelta(hours=48),
                )
                if status != "paid":
                    self._shipment(rng, order, placed, status, region)
                # the money goes through escrow like real money
                merchant_services.record_order_paid(order=order, now=placed)
                if status == "completed":
                    merchant_services.confirm_receipt(actor=buyer, order_id=order.pk, now=placed + timedelta(days=4))
                    order.refresh_from_db()
                orders.append(order)
        return orders

    def _stock(self, rng: random.Random, orders: list[Order]) -> None:
        """What each merchant has on hand of every variant its orders name, and
        of the other variants it sells, so a colour or size change before
        shipment finds some in stock and some sold out ("if stock allows")."""
        variants_by_merchant = {code: sorted({g[1] for g in goods}) for code, goods in GOODS.items()}
        wanted = {}
        for order in orders:
            for item in order.items:
                for variant in variants_by_merchant[order.merchant.code]:
                    wanted[(order.merchant_id, item["sku"], variant)] = None
        rows = []
        for merchant_id, sku, variant in sorted(wanted):
            on_hand = 0 if rng.random() < 0.2 else rng.randint(1, 30)
            rows.append(VariantStock(merchant_id=merchant_id, sku=sku, variant=variant, on_hand=on_hand))
        VariantStock.objects.bulk_create(rows)

    def _shipment(self, rng: random.Random, order: Order, placed, status: str, region: str) -> None:
        shipped = placed + timedelta(hours=rng.randint(4, 30))
        carrier = rng.choice(CARRIERS)
        delivered = status in ("delivered", "completed")
        shipment = Shipment.objects.create(
            order=order, carrier=carrier, tracking_no=f"{rng.choice(['SF', 'ZT', 'YT', 'YD', 'JD', 'ST', 'EM'])}{rng.randint(10**11, 10**12 - 1)}",
            status="delivered" if delivered else rng.choice(["in_transit", "in_transit", "out_for_delivery", "exception"]),
            shipped_at=shipped, eta=(shipped + timedelta(days=3)).date(),
        )
        steps = ROUTE if delivered else ROUTE[: rng.randint(1, 3)]
        ShipmentEvent.objects.bulk_create([
            ShipmentEvent(shipment=shipment, occurred_at=shipped + timedelta(hours=10 * i), location=region,
                          description=text.format(city=region))
            for i, text in enumerate(steps)
        ] + ([ShipmentEvent(shipment=shipment, occurred_at=shipped + timedelta(hours=48), location=region,
                            description=f"【{region}】已签收，签收人：本人")] if delivered else []))

    def _knowledge(self, lead: User) -> None:
        for shortcut, title, category, body in QUICK_REPLIES:
            QuickReply.objects.create(shortcut=shortcut, title=title, category=category, body=body, language="zh-hans")
        for shortcut, title, category, body in QUICK_REPLIES_EN:
            QuickReply.objects.create(shortcut=shortcut, title=title, category=category, body=body, language="en")
        for title, category, body in PLAYBOOKS:
            Playbook.objects.create(title=title, category=category, body=body, created_by=lead)

    def _tickets(self, rng: random.Random, agents: list[User], lead: User, orders: list[Order]) -> None:
        replies = ["您好，我来帮您查一下，请稍等。", "已经帮您联系了承运商，有进展第一时间告诉您。", "麻烦您提供一下照片，谢谢。"]
        by_buyer: dict[int, list[Order]] = {}
        for order in orders:
            by_buyer.setdefault(order.buyer_id, []).append(order)
        buyers = list(User.objects.filter(username__startswith="buyer").order_by("pk"))
        head = User.objects.get(username=HEAD_OF_SERVICE[0])
        for i in range(40):
            category, channel, subject, body, end, grade = TICKET_SCENARIOS[i % len(TICKET_SCENARIOS)]
            buyer = buyers[i % len(buyers)]
            order = rng.choice(by_buyer[buyer.pk])
            staff_opened = grade != "3"
            ticket = ticket_services.open_ticket(
                actor=agents[0] if staff_opened else buyer, category=category, subject=subject, body=body,
                order_id=order.pk, channel=Channel.CHAT if channel == Channel.CHAT and not staff_opened else channel,
                buyer_id=buyer.pk if staff_opened else None, grade=grade if staff_opened else None,
            )
            agent = ticket.assignee or agents[i % len(agents)]
            if end != "open" and ticket.status == Ticket.Status.OPEN:
                ticket_services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign", confirm_past_shift=True)
            if end != "open":
                ticket_services.post_message(actor=agent, ticket_id=ticket.pk, body=rng.choice(replies))
                if i % 3 == 0:
                    ticket_services.post_message(actor=agent, ticket_id=ticket.pk, body="已核实物流轨迹，待承运商回复。", internal=True)
            if end == "waiting_buyer":
                ticket_services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_buyer")
            elif end == "waiting_merchant":
                ticket_services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_merchant")
            elif end in ("resolved", "closed"):
                ticket_services.post_message(actor=buyer, ticket_id=ticket.pk, body="好的，谢谢！")
                # tiers are roles: a grade-2 ticket is the team lead's to resolve, grade 1 and up the head's
                settler = {1: agent, 2: lead}.get(ticket.tier) or head
                ticket_services.transition_ticket(actor=settler, ticket_id=ticket.pk, name="resolve")
                if end == "closed":
                    ticket_services.transition_ticket(actor=settler, ticket_id=ticket.pk, name="close")
                if i % 2 == 0:
                    ticket_services.rate_ticket(actor=buyer, ticket_id=ticket.pk, score=rng.choice([8, 9, 10, 10, 6]))
            # spread the clock: some tickets are older, a few already overdue
            age = timedelta(minutes=rng.randint(2, 50)) if i % 4 else timedelta(minutes=rng.randint(1, 10))
            ticket = Ticket.objects.get(pk=ticket.pk)
            if ticket.due_at:
                Ticket.objects.filter(pk=ticket.pk).update(
                    created_at=ticket.created_at - age, due_at=ticket.due_at - age
                )
                TicketEvent.objects.filter(ticket=ticket, kind="created").update(created_at=ticket.created_at - age)
        ticket_services.sweep_sla()


    def _money(self, rng: random.Random, agents: list[User], lead: User, merchants: list[Merchant],
               buyers: list[User]) -> None:
        """Deposits, disputes whose holds outgrow merchant1's deposit, resend
        tasks, payout history and credit scores; each merchant differs."""
        now = timezone.now()
        m1, m2, m3 = merchants
        for merchant, deposit in ((m1, 100_000), (m2, 500_000), (m3, 200_000)):
            merchant_services.top_up_deposit(actor=lead, merchant_id=merchant.pk, amount_fen=deposit)
        # settled sales history, so merchant1 has a real available balance
        for merchant, count in ((m1, 12), (m2, 6), (m3, 3)):
            for i in range(count):
                name, variant, price = rng.choice(GOODS[merchant.code])
                order = self._demo_order(rng, merchant, rng.choice(buyers), name, variant, price * rng.randint(2, 6),
                                         placed=now - timedelta(days=20 + i), status="delivered")
                merchant_services.record_order_paid(order=order, now=order.placed_at)
                merchant_services.confirm_receipt(actor=order.buyer, order_id=order.pk, now=order.placed_at + timedelta(days=5))
        # merchant1: three disputes on settled orders, ¥1,295 held against a ¥1,000 deposit
        disputes = [("机械键盘", "青轴", 59_800, Category.NOT_RECEIVED, "显示已签收但没收到键盘"),
                    ("无线蓝牙耳机", "白色", 39_800, Category.PARCEL_DAMAGED, "耳机盒子压坏了，右耳没声音"),
                    ("机械键盘", "红轴", 29_900, Category.WRONG_ITEM, "买的红轴发来的是青轴")]
        for (name, variant, amount, category, body), buyer in zip(disputes, buyers[:3], strict=True):
            order = self._demo_order(rng, m1, buyer, name, variant, amount, placed=now - timedelta(days=15),
                                     status="delivered")
            merchant_services.record_order_paid(order=order, now=order.placed_at)
            merchant_services.confirm_receipt(actor=buyer, order_id=order.pk, now=order.placed_at + timedelta(days=4))
            ticket = ticket_services.open_ticket(actor=buyer, category=category, subject=body[:20], body=body,
                                                 order_id=order.pk)
            ticket_services.transition_ticket(actor=agents[0], ticket_id=ticket.pk, name="assign", confirm_past_shift=True)
            ticket_services.transition_ticket(actor=agents[0], ticket_id=ticket.pk, name="wait_merchant")
        # a dispute on an order still in escrow: it simply stays there
        order = self._demo_order(rng, m1, buyers[3], "快充数据线 1m", "黑色", 5_980, placed=now - timedelta(days=2),
                                 status="shipped")
        merchant_services.record_order_paid(order=order, now=order.placed_at)
        ticket_services.open_ticket(actor=buyers[3], category=Category.REFUND_REQUEST, subject="数据线不能快充",
                                    body="买的快充线只能慢充，申请退款", order_id=order.pk)
        # compelled resends: two open for merchant1 (one close to its deadline), one missed for merchant3
        for merchant, hours, buyer in ((m1, 30, buyers[4]), (m1, 5, buyers[5]), (m3, -3, buyers[6])):
            name, variant, price = GOODS[merchant.code][0]
            order = self._demo_order(rng, merchant, buyer, name, variant, price, placed=now - timedelta(days=6),
                                     status="delivered")
            merchant_services.record_order_paid(order=order, now=order.placed_at)
            ticket = ticket_services.open_ticket(actor=buyer, category=Category.NOT_RECEIVED, subject="包裹丢了",
                                                 body="快递显示丢件，请安排补发", order_id=order.pk)
            ticket_services.transition_ticket(actor=agents[1], ticket_id=ticket.pk, name="assign", confirm_past_shift=True)
            with transaction.atomic():
                merchant_services.create_resend_task(order=order, ticket_id=ticket.pk, reason="承运商确认丢件，商家补发",
                                                     now=now - timedelta(hours=48 - hours))
        ticket_services.sweep_missed_resends()
        # payout history
        for merchant, amounts in ((m1, [(80_000, True), (20_000, False)]), (m2, [(150_000, True)])):
            staff = merchant.staff.first().user
            for i, (amount, paid) in enumerate(amounts):
                payout, _ = merchant_services.request_payout(actor=staff, merchant_id=merchant.pk, amount_fen=amount,
                                                             idempotency_key=f"seed-{merchant.code}-{i}",
                                                             now=now - timedelta(days=7 - i))
                merchant_services.settle_payout(payout_id=payout.pk, paid=paid, reason="" if paid else "收款账户名不符",
                                                now=now - timedelta(days=6 - i))
        merchant_services.recompute_credit_scores(now=now)

    def _remedies(self, agents: list[User]) -> None:
        """A few remedies: self-service coupons and resends, and refunds over
        the value cap waiting in the supervisor's approval queue."""
        compensation.get_policy()
        candidates = list(
            Ticket.objects.filter(status__in=[Ticket.Status.ASSIGNED, Ticket.Status.WAITING_MERCHANT],
                                  order__isnull=False, assignee__isnull=False)
            .select_related("order", "assignee").order_by("pk")[:8]
        )
        for i, ticket in enumerate(candidates):
            actor = ticket.assignee
            if i % 4 == 0:
                kind, extra = "resend", {"with_coupon": True}
            elif i % 4 == 1:
                kind, extra = "coupon", {}
            else:
                kind, extra = "refund", {}
            try:
                compensation.apply_remedy(actor=actor, ticket_id=ticket.pk, kind=kind, reason="双十一物流延误补偿",
                                          idempotency_key=f"seed-remedy-{ticket.pk}", **extra)
            except DomainError:
                continue  # an order that cannot take this remedy: the demo simply skips it

    def _demo_order(self, rng: random.Random, merchant: Merchant, buyer: User, name: str, variant: str,
                    amount: int, *, placed, status: str) -> Order:
        address, region = rng.choice(REGIONS)
        order = Order.objects.create(
            order_no=f"DD{placed:%Y%m%d}{Order.objects.count() + 1:06d}", buyer=buyer, merchant=merchant,
            items=[{"sku": f"{merchant.code}-X", "name": name, "variant": variant, "qty": 1, "price_fen": amount}],
            amount_fen=amount, status=status, shipping_address=f"{address} {buyer.display_name} {buyer.phone}",
            region=region, placed_at=placed, ship_by=placed + timedelta(hours=48),
        )
        if status != "paid":
            self._shipment(rng, order, placed, "delivered" if status == "delivered" else "shipped", region)
        return order


def bulk_tickets(count: int, *, rng: random.Random, batch: int = 5000) -> int:
    """Insert ``count`` realistic tickets fast (bulk, no per-row services)."""
    buyers = list(User.objects.filter(username__startswith="buyer").values_list("pk", flat=True))
    orders = list(Order.objects.values_list("pk", "buyer_id", "merchant_id", "order_no"))
    people = {pk: (username, name, phone) for pk, username, name, phone
              in User.objects.filter(pk__in={o[1] for o in orders}).values_list("pk", "username", "display_name", "phone")}
    queues = list(Queue.objects.values_list("pk", flat=True))
    agents = list(AgentProfile.objects.values_list("user_id", flat=True))
    if not (buyers and orders and queues and agents):
        raise SystemExit("Run seed_demo once before adding bulk tickets.")
    now = timezone.now()
    statuses = ["open"] * 3 + ["assigned"] * 3 + ["waiting_buyer", "waiting_merchant"] + ["resolved"] * 4 + ["closed"] * 6
    categories = [c for c in Category.values if c not in ("merchant_payout", "merchant_dispute")]
    grades = ["3"] * 12 + ["2", "2", "1", "special"]
    made = 0
    while made < count:
        rows = []
        for _ in range(min(batch, count - made)):
            order_id, buyer_id, merchant_id, order_no = rng.choice(orders)
            status = rng.choice(statuses)
            grade = rng.choice(grades)
            created = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
            due = created + sla.deadline_for(grade)
            subject = f"批量工单 {made + len(rows) + 1}"
            ticket = Ticket(
                search_text=search.extend("", subject, order_no, *people.get(buyer_id, ()), "我的订单有问题，请帮忙处理。"),
                subject=subject, category=rng.choice(categories), party="buyer",
                channel=rng.choice(Channel.values), grade=grade, tier=sla.GRADE_TIERS[grade], language="zh-hans",
                queue_id=rng.choice(queues), buyer_id=buyer_id, merchant_id=merchant_id, order_id=order_id,
                assignee_id=None if status == "open" else rng.choice(agents), status=status,
                created_at=created, due_at=None if status == "waiting_buyer" else due, last_seq=1,
                sla_paused_at=created if status == "waiting_buyer" else None,
                sla_remaining_s=600 if status == "waiting_buyer" else None,
                resolved_at=created + timedelta(hours=1) if status in ("resolved", "closed") else None,
                closed_at=created + timedelta(days=1) if status == "closed" else None,
            )
            rows.append(ticket)
        with transaction.atomic():
            created_rows = Ticket.objects.bulk_create(rows)
            Message.objects.bulk_create([
                Message(ticket=t, seq=1, author_id=t.buyer_id, author_role="buyer", body="我的订单有问题，请帮忙处理。",
                        created_at=t.created_at)
                for t in created_rows
            ])
        made += len(rows)
    return made


def seed_risk(stdout) -> None:
    """The order system's machine login (integration role, a token that does
    not expire, no password) and one stolen account the detector has caught:
    ``sleeper1``, whose owner last signed in 200 days ago, ordering four times
    since a stranger's sign-in last night. Idempotent. Only a token's digest
    is stored, so its key is printed when it is issued (the first run);
    ``manage.py issue_api_token order-system`` issues another."""
    from accounts.models import LoginEvent
    from accounts.roles import INTEGRATION
    from accounts.services import issue_api_token
    from risk.services import detect_stolen_accounts

    system = User.objects.filter(username="order-system").first() or create_user(
        username="order-system", password=None, role=INTEGRATION, display_name="订单系统")
    issued = None if system.api_tokens.exists() else issue_api_token(user=system)
    merchant = Merchant.objects.filter(code="M001").first()
    if merchant is not None and not User.objects.filter(username="sleeper1").exists():
        now = timezone.now()
        sleeper = create_user(username="sleeper1", password=PASSWORD, role=BUYER, display_name="沉睡用户",
                              phone="13800000099", email="sleeper1@example.com")
        User.objects.filter(pk=sleeper.pk).update(date_joined=now - timedelta(days=400))
        LoginEvent.objects.create(user=sleeper, at=now - timedelta(days=200), ip="36.110.20.8", device="owner-iphone",
                                  source=LoginEvent.Source.TOKEN)
        LoginEvent.objects.create(user=sleeper, at=now - timedelta(hours=22), ip="103.21.244.9", device="unknown-pc",
                                  source=LoginEvent.Source.SESSION)
        for n, hours in enumerate((20, 14, 7, 2), start=1):
            placed = now - timedelta(hours=hours, minutes=7 * n)
            order = Order.objects.create(
                order_no=f"DD{placed:%Y%m%d}9{n:05d}", buyer=sleeper, merchant=merchant, amount_fen=29_900,
                items=[{"sku": "M001-3", "name": "机械键盘", "variant": "青轴", "qty": 1, "price_fen": 29_900}],
                shipping_address="广东省深圳市宝安区某仓库 代收点", region="广东", placed_at=placed,
                ship_by=placed + timedelta(hours=48),
            )
            merchant_services.record_order_paid(order=order, now=placed)
        detect_stolen_accounts(now=now)
    shown = (f"Authorization: Token {issued.key}" if issued
             else "token issued on the first run (manage.py issue_api_token order-system for another)")
    stdout.write(
        f"  order system  order-system (no password) · {shown}\n"
        "                GET /api/v1/risk/check/?account=sleeper1  · review list http://127.0.0.1:8000/console/risk/\n"
    )


def seed_incident(stdout) -> None:
    """A lost-parcel wave: six parcels to 浙江 reported lost by the carrier feed
    through the same service as ``POST /api/v1/logistics/events/``, so the
    emergency plan's rule (more than 5 lost in a region) raises a grade-2
    incident with their tickets by itself. Idempotent."""
    from incidents.models import Incident
    from incidents.services import ingest_logistics_event

    if Incident.objects.exists():
        return
    system = User.objects.filter(username="order-system").first()
    merchant = Merchant.objects.filter(code="M002").first() or Merchant.objects.first()
    buyers = list(User.objects.filter(username__startswith="buyer").order_by("pk")[:6])
    if system is None or merchant is None or len(buyers) < 6:
        return
    now = timezone.now()
    for n, buyer in enumerate(buyers, start=1):
        placed = now - timedelta(days=3, hours=n)
        order = Order.objects.create(
            order_no=f"DD{placed:%Y%m%d}7{n:05d}", buyer=buyer, merchant=merchant, amount_fen=8_800,
            items=[{"sku": "M002-1", "name": "保温杯", "variant": "蓝色", "qty": 1, "price_fen": 8_800}],
            shipping_address="浙江省杭州市西湖区文三路 100 号", region="浙江", placed_at=placed,
            ship_by=placed + timedelta(hours=48), status=Order.Status.SHIPPED,
        )
        merchant_services.record_order_paid(order=order, now=placed)
        shipment = Shipment.objects.create(order=order, carrier="中通快递", tracking_no=f"ZT{placed:%m%d}{n:06d}",
                                           status=Shipment.Status.IN_TRANSIT, shipped_at=placed + timedelta(hours=20))
        ingest_logistics_event(actor=system, payload={
            "event_id": f"ZT-LOST-{shipment.tracking_no}", "tracking_no": shipment.tracking_no, "carrier": "中通快递",
            "kind": "lost", "occurred_at": (now - timedelta(hours=6 - n)).isoformat(), "location": "杭州转运中心",
        })
    incident = Incident.objects.filter(rule="lost", region="浙江").first()
    if incident is not None:
        stdout.write(f"  incident      #{incident.pk} {incident.title} · http://127.0.0.1:8000/console/incidents/{incident.pk}/\n")
