"""Controlled vocabularies with Chinese and English labels, as field staff read them.

The database checks the same values (see the migrations); ``tests/test_schema.py`` keeps the two in step.
"""

from __future__ import annotations

from types import MappingProxyType

ROLES = MappingProxyType({
    "admin": ("系统管理员", "Administrator"),
    "planner": ("规划员", "Planner"),
    "inspector": ("督查员", "Inspector"),
    "grid_worker": ("网格员", "Grid worker"),
    "viewer": ("查看者", "Viewer"),
    "auditor": ("审计员", "Auditor"),
    "department": ("责任部门", "Department"),
    "police": ("网格警员", "Grid police officer"),
    "medical": ("医护人员", "Medical staff"),
    "specialist": ("部门专员", "Department specialist"),
    "building_head": ("楼栋长", "Building head"),
    "unit_head": ("单元长", "Unit head"),
    "volunteer": ("志愿者", "Volunteer"),
})

TEAM_DUTIES = MappingProxyType({
    "leader": ("网格长", "Grid leader"),
    "worker": ("网格员", "Grid worker"),
    "police": ("网格警员", "Police officer"),
    "medical": ("医护人员", "Medical staff"),
    "specialist": ("部门专员", "Department specialist"),
    "building_head": ("楼栋长", "Building head"),
    "unit_head": ("单元长", "Unit head"),
    "volunteer": ("志愿者", "Volunteer"),
})
"""A member's duty in a grid's team (2+N, 三人小组): leader and worker are grid workers' duties
(``grid_assignments.duty``); the others are ``team_assignments.duty``."""

TASK_KINDS = MappingProxyType({
    "isolation_delivery": ("居家隔离送物资", "Home-isolation delivery"),
    "care_visit": ("独居老人关爱探访", "Care visit (elderly living alone)"),
    "screening_followup": ("排查随访", "Screening follow-up"),
    "other": ("其他任务", "Other task"),
})

DIVISION_LEVELS = MappingProxyType({
    "district": ("区", "District"),
    "subdistrict": ("街道", "Subdistrict"),
    "community": ("社区", "Community"),
})

GRID_KINDS = MappingProxyType({
    "comprehensive": ("综合网格", "Comprehensive grid"),
    "dedicated": ("专属网格", "Dedicated grid"),
})

BUILDING_USES = MappingProxyType({
    "residential": ("住宅", "Residential"),
    "commercial": ("商业", "Commercial"),
    "industrial": ("工业", "Industrial"),
    "public": ("公共服务", "Public service"),
    "mixed": ("商住混合", "Mixed use"),
    "other": ("其他", "Other"),
})

HOUSEHOLD_TAGS = MappingProxyType({
    "elderly_alone": ("独居老人", "Elderly living alone"),
    "elderly": ("老年人", "Elderly"),
    "disabled": ("残疾人", "Disabled"),
    "home_isolation": ("居家隔离", "Under home isolation"),
    "chronic_illness": ("慢性病", "Chronic illness"),
    "pregnant": ("孕产妇", "Pregnant"),
    "minor_unaccompanied": ("留守未成年人", "Unaccompanied minor"),
    "low_income": ("低保户", "Low-income household"),
    "veteran": ("退役军人", "Veteran"),
    "special_care": ("特殊关爱对象", "Special care"),
})

ENCLOSURE_KINDS = MappingProxyType({
    "estate": ("小区", "Residential estate"),
    "urban_village": ("城中村", "Urban village"),
    "community": ("社区", "Community"),
    "industrial": ("工业园区", "Industrial park"),
    "other": ("其他", "Other"),
})

CHECKPOINT_KINDS = MappingProxyType({
    "pedestrian": ("人行卡口", "Pedestrian"),
    "vehicle": ("车行卡口", "Vehicle"),
    "both": ("人车混行卡口", "Pedestrian and vehicle"),
})

CHECKPOINT_STATUSES = MappingProxyType({
    "staffed": ("有人值守", "Staffed"),
    "sealed": ("已封闭", "Sealed"),
    "unstaffed": ("无人值守", "Unstaffed"),
})

PLACE_KINDS = MappingProxyType({  # places departments inspect (一张网): 三小场所, enterprises, schools, clinics
    "shop": ("小商店", "Small shop"),
    "restaurant": ("小餐饮", "Small restaurant"),
    "hotel": ("小旅馆", "Small hotel"),
    "enterprise": ("企业", "Enterprise"),
    "school": ("学校", "School"),
    "clinic": ("诊所", "Clinic"),
})


def label(vocabulary: MappingProxyType, value: str, lang: str = "zh") -> str:
    """The label of ``value`` in ``lang`` ('zh' or 'en'); the raw value if it is not in the vocabulary."""
    labels = vocabulary.get(value)
    if labels is None:
        return value
    return labels[0] if lang == "zh" else labels[1]

# -- field work (screening campaigns 排查, visits) ---------------------------------------------------
CAMPAIGN_STATUSES = MappingProxyType({
    "open": ("进行中", "Open"),
    "closed": ("已结束", "Closed"),
})

VISIT_RESULTS = MappingProxyType({
    "normal": ("已排查·正常", "Screened, normal"),
    "follow_up": ("已排查·需跟进", "Screened, needs follow-up"),
    "vacant": ("空置房", "Vacant"),
    "moved_out": ("已搬离", "Moved out"),
    "refused": ("拒绝配合", "Refused"),
})

HOUSEHOLD_VISIT_STATUSES = MappingProxyType({
    "visited": ("已走访", "Visited"),
    "unvisited": ("未走访", "Not yet visited"),
    "not_targeted": ("不在排查范围", "Not in the campaign"),
})

# -- inspection (openings of enclosures 围合出入口, checkpoints 卡口, patrols 巡查) ----------------------------
OPENING_STATUSES = MappingProxyType({
    "open": ("未封闭·无人值守", "Open, unguarded"),
    "sealed": ("已封闭", "Sealed"),
    "checkpoint": ("卡口", "Checkpoint"),
})

OPENING_ORIGINS = MappingProxyType({
    "detected": ("道路与围合边界交叉处", "Where a street crosses the perimeter"),
    "manual": ("人工添加", "Added by hand"),
    "checkpoint": ("由已登记卡口生成", "From a registered checkpoint"),
})

BARRIER_KINDS = MappingProxyType({
    "water_barrier": ("水马", "Water-filled barrier"),
    "fence": ("围挡", "Fence"),
    "wall": ("砌墙", "Wall"),
    "locked_gate": ("锁闭大门", "Locked gate"),
    "other": ("其他", "Other"),
    "unrecorded": ("未登记类型", "Not recorded"),
})

UNGUARDED_REASONS = MappingProxyType({
    "open": ("出入口未封闭且无人值守", "Open and unguarded"),
    "checkpoint_unstaffed": ("卡口无人值守", "Checkpoint without staff"),
    "hours_unknown": ("值守时间无法识别", "Staffed hours cannot be read"),
})

DISTANCE_MODES = MappingProxyType({
    "walk": ("步行距离（步行路网）", "Walking distance on the footpath network"),
    "straight": ("直线距离", "Straight-line distance"),
})

# -- the population ledger (实有人口) -------------------------------------------------------------------------------
PERSON_RELATIONS = MappingProxyType({
    "head": ("户主", "Head of household"),
    "spouse": ("配偶", "Spouse"),
    "child": ("子女", "Child"),
    "parent": ("父母", "Parent"),
    "other": ("其他", "Other"),
})

RESIDENCE_KINDS = MappingProxyType({
    "registered": ("户籍人口", "Registered resident"),
    "floating": ("流动人口", "Floating population"),
    "foreign": ("境外人员", "Foreign resident"),
})

# A person's marks: the household tags (a household carries the union of its residents' marks) and a few more.
PERSON_TAGS = MappingProxyType({
    **HOUSEHOLD_TAGS,
    "key_person": ("重点人员", "Person of special concern"),
})

MOVE_OUT_REASONS = MappingProxyType({
    "moved": ("迁往辖区内其他住户", "Moved to another household of the ledger"),
    "left": ("已迁出", "Left (no longer in the ledger, or a move-out date given)"),
})
