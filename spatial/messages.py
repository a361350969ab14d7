"""The message catalogue: what the pages say when the service refuses something, Chinese first, English beside.

Every error answer carries a stable ``code`` (``GridgovError(..., code=...)``; without one, the error's kind such
as ``InvalidInput``) and its parameters as fields of the body (the ``detail`` keywords of the error). A page
looks the code up here (``GET /api/messages``, read once by ``api/static/common.js``) and fills the ``{name}``
placeholders from the body; the English ``detail`` sentence stays in the body for API clients and logs. A code
without a text here is a bug: ``tests/test_messages.py`` finds every ``code="..."`` in the sources and fails
when one has no Chinese or English text, or when the two texts use different placeholders.

A kind's own code (``InvalidInput``, ``NotFound`` …) is the fallback for errors not yet given a code of their
own: its text ends in ``{detail}``, the English sentence, so nothing is lost while the catalogue grows.
"""

from __future__ import annotations

import string
from typing import Any

MESSAGES: dict[str, tuple[str, str]] = {
    # -- kinds: the fallback for errors without a code of their own ({detail}: the English sentence) -----------
    "InvalidInput": ("输入有误：{detail}", "Invalid input: {detail}"),
    "UnknownCRS": ("未知的坐标系：{detail}", "Unknown coordinate reference system: {detail}"),
    "NotFound": ("未找到，或不在您的管辖范围内：{detail}", "Not found, or not in your area: {detail}"),
    "Forbidden": ("无权进行此操作：{detail}", "Not allowed: {detail}"),
    "NotAuthenticated": ("请先登录。", "Please log in."),
    "Conflict": ("与已保存的数据冲突：{detail}", "Conflicts with stored data: {detail}"),
    "StaleEdit": ("该记录已被他人更新，请刷新后重试。", "Someone else has changed this since you opened it: reload and "
                  "try again."),
    "PreconditionRequired": ("请先刷新，再提交修改（缺少版本号）。", "Reload first, then send the change (the version "
                             "is missing)."),
    "PayloadTooLarge": ("内容过大：{detail}", "Too large: {detail}"),
    "TooManyRequests": ("操作过于频繁，请 {retry_after_s} 秒后再试。", "Too many attempts: try again in "
                        "{retry_after_s} s."),
    "MethodNotAllowed": ("不支持此操作：{detail}", "Not supported here: {detail}"),
    "UnsupportedMediaType": ("不支持的文件或内容类型：{detail}", "Unsupported file or content type: {detail}"),
    "NotAcceptable": ("无法以所请求的格式答复：{detail}", "Cannot answer in the format asked for: {detail}"),
    "DatabaseUnavailable": ("数据库暂时无法访问，请稍后重试。", "The database is not reachable: retry shortly."),
    "SetupError": ("服务器缺少必要组件：{detail}", "The server lacks a component: {detail}"),
    "KeyUnavailable": ("个人信息加密密钥不可用（请管理员检查密钥文件）：{detail}", "The personal-data key is not "
                       "available (an administrator should check the key file): {detail}"),
    "UpstreamFailed": ("外部服务（如底图）出错：{detail}", "An outside service (such as a basemap) failed: {detail}"),
    "UpstreamTimeout": ("外部服务（如底图）响应超时：{detail}", "An outside service (such as a basemap) timed out: "
                        "{detail}"),
    "InternalError": ("服务器内部错误（已记录，请联系管理员）。", "Internal error (logged; tell an administrator)."),
    "HTTPError": ("请求失败：{detail}", "The request failed: {detail}"),
    # -- request validation (FastAPI/pydantic): the first problem, by pydantic's error type; {field} the name ---
    "validation.missing": ("缺少必填项 {field}。", "{field} is required."),
    "validation.greater_than_equal": ("{field} 须不小于 {ge}。", "{field} must be at least {ge}."),
    "validation.greater_than": ("{field} 须大于 {gt}。", "{field} must be greater than {gt}."),
    "validation.less_than_equal": ("{field} 须不大于 {le}。", "{field} must be at most {le}."),
    "validation.less_than": ("{field} 须小于 {lt}。", "{field} must be less than {lt}."),
    "validation.string_too_long": ("{field} 不能超过 {max_length} 个字符。", "{field} must be at most {max_length} "
                                   "characters."),
    "validation.string_too_short": ("{field} 至少需要 {min_length} 个字符。", "{field} needs at least {min_length} "
                                    "characters."),
    "validation.too_long": ("{field} 最多 {max_length} 项。", "{field} takes at most {max_length} items."),
    "validation.too_short": ("{field} 至少需要 {min_length} 项。", "{field} needs at least {min_length} items."),
    "validation.int_parsing": ("{field} 须为整数。", "{field} must be a whole number."),
    "validation.float_parsing": ("{field} 须为数字。", "{field} must be a number."),
    "validation.finite_number": ("{field} 须为有限的数字。", "{field} must be a finite number."),
    "validation.bool_parsing": ("{field} 须为是或否（true/false）。", "{field} must be true or false."),
    "validation.literal_error": ("{field} 须为以下之一：{expected}。", "{field} must be one of {expected}."),
    "validation.enum": ("{field} 须为以下之一：{expected}。", "{field} must be one of {expected}."),
    "validation.string_pattern_mismatch": ("{field} 的格式不对（须符合 {pattern}）。", "{field} does not have the "
                                           "expected form ({pattern})."),
    "validation.datetime_parsing": ("{field} 须为日期时间（如 2026-12-01T08:00:00+08:00）。", "{field} must be a date "
                                    "and time (such as 2026-12-01T08:00:00+08:00)."),
    "validation.date_parsing": ("{field} 须为日期（如 2026-12-01）。", "{field} must be a date (such as 2026-12-01)."),
    "validation.json_invalid": ("请求内容不是有效的 JSON。", "The request body is not valid JSON."),
    # -- the browser's own: no answer at all (offline, server down) ------------------------------------------
    "network": ("网络不可用或服务器无响应，请检查网络后重试。", "No network, or the server does not answer: check the "
                "connection and retry."),
    # -- scope and position ------------------------------------------------------------------------------------
    "scope.outside_area": ("{what} 不在您的管辖范围（{area}）内。", "{what} is outside your area ({area})."),
    "scope.no_area": ("您的账号尚未分配管辖范围，请联系管理员。", "Your account has no area assigned: ask an "
                      "administrator."),
    "position.outside_service_area": ("该位置不在服务范围内（{margin_m} 米内没有社区或网格）；请检查坐标及其坐标系"
                                      "（手机和微信为 GCJ-02，GPS 为 WGS 84）。",
                                      "The position is outside the service area (no community or grid within "
                                      "{margin_m} m): check the coordinates and their crs (GCJ-02 for phones and "
                                      "WeChat, WGS 84 for GPS)."),
    "geometry.outside_service_area": ("图形不在服务范围内（经度 {x0}…{x1}，纬度 {y0}…{y1}）；请检查坐标系与坐标顺序"
                                      "（经度在前）。",
                                      "The geometry lies outside the service area (lon {x0}…{x1}, lat {y0}…{y1}): "
                                      "check the crs and the axis order (longitude first)."),
    # -- uploads (onboarding imports) ---------------------------------------------------------------------------
    "import.rows_rejected": ("{count} 行被拒绝，未写入任何数据：请改正这些行，或勾选“跳过错误行”后导入。",
                             "{count} row(s) rejected; nothing was written: fix them, or import with skip_errors."),
    "import.basis_required": ("请先检查文件，再以检查结果导入（缺少检查的依据 If-Match）。", "Check the file first, then "
                              "import it with the check's basis as If-Match."),
    "import.stale": ("检查之后数据已有变化，请重新检查文件并核对报告。", "The stored data changed after the check: check "
                     "the file again and review the report."),
    # -- divisions ---------------------------------------------------------------------------------------------
    "division.unknown": ("行政区划 {division} 不存在。", "Division {division} does not exist."),
    "scope.division_needed": ("请选择行政区划：您的账号没有指定管辖范围。", "Name a division: your account has no area "
                               "of its own."),
    # -- planning ----------------------------------------------------------------------------------------------
    "merge.not_adjacent": ("网格 {grids} 与 {joined} 没有共同边界：只能合并相邻的网格。",
                                 "Grids {grids} share no border with {joined}: only adjacent grids can be merged."),
    "merge.needs_two": ("合并至少需要两个网格。", "A merge needs at least two grids."),
    "merge.other_community": ("只能合并同一社区的网格（所选网格分属 {communities}）。",
                              "Only grids of one community can be merged (these lie in {communities})."),
    "plan.not_saved": ("报告列出的 {count} 个问题须先解决。", "Resolve the {count} problem(s) the report lists first."),
    "plan.boundary_outside": ("边界在社区 {community} 之外：请在社区范围内绘制。",
                              "The boundary lies outside community {community}: draw it inside the community."),
    "plan.not_active_grid": ("网格 {grid_id} 不是社区 {community} 的现行网格。",
                             "Grid {grid_id} is not a current grid of community {community}."),
    "plan.cover_differs": ("方案与社区 {community} 的范围不完全一致（相差 {off_m2} m²）：请按当前边界重新生成方案。",
                           "The proposal does not cover community {community} exactly ({off_m2} m² differ): propose "
                           "again from the current boundary."),
    "split.parts": ("切分线须把网格 {grid} 恰好分成两部分，现在分成了 {parts} 部分：请从网格一侧画到另一侧。",
                    "The line must cut grid {grid} into exactly two parts; it makes {parts}: draw it from one side of "
                    "the grid to the other."),
    "split.side_empty": ("保持楼栋完整后，网格 {grid} 的一侧没有土地：请移动切分线，使两侧各有土地。",
                         "After keeping buildings whole, one side of grid {grid} is empty: move the line so that each "
                         "side holds land of its own."),
    "grid.reason_needed": ("请填写修改原因：每次网格变更都会记录原因。",
                           "Say why: every change to a grid is recorded with a reason."),
    "grid.name_needed": ("网格需要名称。", "A grid needs a name."),
    "grid.not_in_community": ("社区 {community} 没有现行网格 {grid}。",
                              "No current grid {grid} in community {community}."),
    "grid.numbers_exhausted": ("社区 {community} 的网格编号已用到 {highest}，再新增 {needed} 个将超过 99"
                               "（已撤销网格的编号不再使用）。",
                               "Community {community} has used grid numbers up to {highest}; {needed} new grids would "
                               "pass 99 (codes of retired grids stay taken)."),
    "plan.overlaps": ("与相邻网格重叠 {count} 处", "{count} overlap(s) with neighbouring grids"),
    "plan.outside": ("超出社区范围 {count} 处", "{count} part(s) outside the community"),
    "plan.households_out_of_range": ("网格 {grid} 将有 {households} 户，超出 {low}–{high} 户的范围",
                                     "Grid {grid} would hold {households} households, outside {low}–{high}"),
    "plan.gaps": ("{count} 处未被网格覆盖，共 {area_m2} m²", "{count} piece(s) of land no grid covers, {area_m2} m² in all"),
    "plan.cut_buildings": ("{count} 栋楼被网格边界切开", "{count} building(s) cut by a grid boundary"),
    # -- the population ledger, corrected on the spot (动态更新) --------------------------------------------------
    "ledger.bad_value": ("{field} 填写有误：{reason}", "{field}: {reason}"),
    "ledger.stale": ("该户信息已被他人修改（现为第 {version} 版），已重新载入，请核对后再改。",
                     "Someone else changed this household (now version {version}): it was reloaded, check it and "
                     "try again."),
    "ledger.version_missing": ("请先载入该户信息再修改（缺少版本号 If-Match）。",
                               "Load the household first, then change it (If-Match with its version is missing)."),
    "ledger.lives_here": ("此人已登记在本户。", "This person is registered in this household already."),
    "ledger.lives_elsewhere": ("此人登记在您管辖范围以外的另一户：请该户所在网格先办理迁出。",
                               "This person is registered in another household outside your area: that grid "
                               "should mark them moved out first."),
    "ledger.second_head": ("本户已有户主 {head}：请先更改原户主的关系。",
                           "This household has a head already ({head}): change their relation first."),
    "ledger.head_first": ("该户尚未录入实有人口，请先添加户主。",
                          "This household is not in the population ledger yet: add the head of household first."),
    "ledger.moved_out_already": ("此人已于 {moved_out} 迁出。", "This person moved out on {moved_out} already."),
    "ledger.no_person": ("本户没有编号为 {person} 的在住人员。", "No current resident {person} in this household."),
    "ledger.room_taken": ("该楼栋已有 {unit} 单元 {room} 号住户。",
                          "That building has a household in unit {unit}, room {room} already."),
    "ledger.bad_date": ("日期须在 {earliest} 至 {latest} 之间。", "The date must lie between {earliest} and {latest}."),
    "ledger.nothing_to_change": ("没有要更改的内容。", "Nothing to change."),
    # -- inspection --------------------------------------------------------------------------------------------
    "coverage.threshold_range": ("距离阈值须在 {min_m} 到 {max_m} 米之间，当前为 {got}。",
                                 "The distance threshold must be between {min_m} and {max_m} m, got {got}."),
    # -- cases: photos, duplicates, satisfaction, supervision, departments (issue 15) ---------------------------
    "case.tracking_code": ("没有找到这个查询码，请核对（10 位字母和数字，不含 0、O、1、I）。",
                           "No report has this code: check it (10 letters and digits, no 0, O, 1 or I)."),
    "case.photo_size": ("照片过大：每张最多 {max_mb} MB。", "The photo is too large: at most {max_mb} MB each."),
    "case.photo_type": ("只能上传 JPEG、PNG 或 WebP 照片（按文件内容判断，而非文件名）。",
                        "Only JPEG, PNG or WebP photos (judged by their content, not their name)."),
    "case.photo_pixels": ("照片尺寸不符：{width} × {height} 像素；最多 {max_megapixels} 百万像素。",
                          "The photo's size does not fit: {width} × {height} pixels; at most {max_megapixels} "
                          "megapixels."),
    "case.photo_bomb": ("照片声明的像素超过 {max_megapixels} 百万，已拒收（未解码）。",
                        "The photo declares more than {max_megapixels} megapixels: refused unread."),
    "case.photo_broken": ("照片无法读取（文件可能已损坏），请重新拍摄或换一张。",
                          "The photo cannot be read (the file may be damaged): take it again or send another."),
    "case.photo_count": ("每件事件最多 {max_photos} 张照片。", "A case holds at most {max_photos} photos."),
    "case.photo_late": ("照片须在上报后一小时内、立案前补充；如需补充请致电社区工作站。",
                        "Photos are added within an hour of the report, before it is registered; call the community "
                        "office to add more."),
    "case.photo_role": ("{role} 角色不能为事件添加照片。", "The role {role} adds no photos to cases."),
    "case.photo_finished": ("事件已办结，不能再添加照片（如需补充请先重新立案）。",
                            "The case is finished: reopen it to add photos."),
    "case.photo_missing": ("没有找到这张照片。", "This photo is not here."),
    "case.merge_into": ("事件 {into} 不是可合并的同类在办事件。", "Case {into} is no open case of the same category to "
                        "merge into."),
    "case.merge_late": ("该事件已立案，是否合并由指挥中心决定。", "The report is registered: the dispatch centre decides "
                        "on merging now."),
    "case.rating_score": ("满意度请选择 1（很不满意）到 5（很满意）。", "Satisfaction is 1 (very dissatisfied) to 5 "
                          "(very satisfied)."),
    "case.rating_comment": ("评价最多 {max_chars} 字。", "A comment has at most {max_chars} characters."),
    "case.rated": ("该事件已评价过（每件只能评价一次）。", "This case has been rated already (once per report)."),
    "case.rating_early": ("事件结案后才能评价。", "A case is rated after it is closed."),
    "case.callback_role": ("电话回访由本网格网格员、辖区规划员或督查员、承办部门登记。",
                           "A phone call-back is recorded by the case's grid worker, a planner or inspector of its "
                           "area, or the department that handled it."),
    "case.supervise_note": ("请填写督办要求（1–500 字）。", "Say what is to be done by when (1 to 500 characters)."),
    "case.supervise_area": ("只能督办本辖区的事件。", "Leaders supervise the cases of their own area."),
    "case.supervise_finished": ("事件已办结，无需督办。", "The case is finished: nothing to supervise."),
    "user.department": ("责任部门账号须填写部门名称（1–64 字），其他角色不填。",
                        "A department's account names its department (1 to 64 characters); other roles none."),
    # -- risk zones --------------------------------------------------------------------------------------------
    "risk_zones.scheme": ("没有分级方案 {scheme}；可用方案：{schemes}。", "No level scheme {scheme}; schemes are "
                          "{schemes}."),
    "risk_zones.level": ("分级方案 {scheme} 中没有等级 {level}；可选：{levels}。", "Scheme {scheme} has no level "
                         "{level}; its levels are {levels}."),
    "risk_zones.target": ("风险区域只能划定在 {kinds} 之上，不能是 {kind}。", "A zone is drawn on one of {kinds}, "
                          "not {kind}."),
    "risk_zones.target_ref": ("请指明划定对象：绘制的区域须提供图形，其他对象须提供编码或编号。",
                              "Send a geometry for a drawn polygon, and a code or id for any other target."),
    "risk_zones.unit": ("单元区域须同时指明楼栋和单元（只有单元区域才指明单元）。", "A unit zone names its building and "
                        "its unit (and only a unit zone names a unit)."),
    "risk_zones.target_missing": ("未找到划定对象：{what}。", "Not found: {what}."),
    "risk_zones.outside": ("该对象不在任何社区内，无法确定管辖范围。", "This target lies in no community: its area "
                           "cannot be decided."),
    "risk_zones.naive_time": ("时间须带时区（如 2026-12-03T08:00:00+08:00）。", "Times need a time zone (e.g. "
                              "2026-12-03T08:00:00+08:00)."),
    "risk_zones.reason": ("请填写原因：风险区域的每次划定和调整都会记录原因。", "Say why: every designation and change "
                          "of a zone is recorded with a reason."),
    "risk_zones.period": ("结束时间须晚于开始（或生效）时间。", "The end must be after the start (or the time the "
                          "change takes effect)."),
    "risk_zones.name": ("区域名称不能超过 200 个字符。", "A zone's name is limited to 200 characters."),
    "risk_zones.not_found": ("未找到风险区域 {zone}，或不在您的管辖范围内。", "No risk zone {zone} in your area."),
    "risk_zones.stale": ("风险区域 {zone} 已被他人更新（当前第 {current_version} 版，您基于第 {your_version} 版），"
                         "请刷新后重试。", "Zone {zone} is at version {current_version}, your change was made on "
                         "version {your_version}: reload and redo it."),
    "risk_zones.ended": ("风险区域 {zone} 已解除或已到期，请重新划定。", "Zone {zone} has ended (lifted or past its "
                         "end): designate a new zone."),
    "risk_zones.redraw": ("只有绘制的区域可以修改边界；其他对象请重新划定。", "Only a drawn polygon's boundary can be "
                          "redrawn; designate the new target instead."),
    "risk_zones.no_change": ("没有需要调整的内容：请给出新的等级、结束时间或边界。", "Nothing to change: send a new "
                             "level, end or boundary."),
    "risk_zones.household_missing": ("未找到住户 {household}，或不在您的管辖范围内。", "No household {household} in "
                                     "your area."),
    "risk_zones.person_missing": ("人员 {person} 在该时间不住在您管辖范围内的任何住户。", "Person {person} lived in "
                                  "no household of your area at that time."),
    "risk_zones.by": ("统计只能按网格或社区。", "Figures are per grid or per community."),
    "risk_zones.limit": ("条数上限为 {max}。", "At most {max} rows."),
    "risk_zones.window": ("统计时段须为 1 至 {max} 天。", "The window is 1 to {max} days."),
    "risk_zones.rule": ("规则有误：{problem}", "A rule is wrong: {problem}"),
    "risk_zones.no_enclosure": ("风险区域 {zone} 不在任何围合区域内：请先绘制围合，再做卡口选址。",
                                "Zone {zone} lies in no enclosure: draw the enclosure first, then site checkpoints."),
    "visits.correction_reason": ("更正走访结果须说明理由（2–500 个字）。", "A correction needs a reason of 2–500 characters."),
    "visits.not_visited": ("该户在此排查中尚未走访，无可更正的记录；请先登记走访。",
                           "This household has no visit in this campaign to correct: record a visit first."),
    "visits.not_yours": ("该走访由 {worker} 登记，只有本人或规划人员可以更正。",
                         "The visit was recorded by {worker}: only they or a planner may correct it."),
    "risk_zones.empty": ("风险区域 {zone} 内目前没有住户。", "Zone {zone} holds no household now."),
    # -- one network (一张网): department grids, crosswalk, places ---------------------------------------------------
    "one_network.credit_code": ("统一社会信用代码有误（{field}）：{reason}", "Bad unified social credit code ({field}): "
                                "{reason}"),
    "one_network.department_name": ("部门名称须为 1 至 100 个字符。", "A department's name has 1 to 100 characters."),
    "one_network.layer_name": ("图层名称须为 1 至 100 个字符。", "A layer's name has 1 to 100 characters."),
    "one_network.subdistrict": ("{subdistrict} 不是街道编码（9 位数字 + 000）。", "{subdistrict} is not a subdistrict code "
                                "(9 digits + 000)."),
    "one_network.no_subdistrict": ("没有街道 {subdistrict}。", "No subdistrict {subdistrict}."),
    "one_network.rejected": ("{count} 个部门网格未通过检查，未写入任何数据（详见报告）。", "{count} department grid(s) "
                             "failed the checks; nothing was written (see the report)."),
    # -- patrol records (巡查记录, spatial/store/patrol_records.py) ----------------------------------------------
    "patrol.datum": ("轨迹坐标须为 WGS 84（EPSG:4326）或 GCJ-02，而不是 {datum}。",
                     "Fixes must be in WGS 84 (EPSG:4326) or GCJ-02, not {datum}."),
    "patrol.not_found": ("巡查 {patrol} 不存在，或您无权查看。", "Patrol {patrol} does not exist or is not yours to see."),
    "patrol.ended": ("巡查 {patrol} 已结束，请开始新的巡查。", "Patrol {patrol} has ended: start a new one."),
    "patrol.open": ("巡查 {patrol} 尚未结束，请先结束它。", "Patrol {patrol} is still open: end it first."),
    "patrol.grid": ("网格 {grid} 不存在，或不是您负责的网格。", "Grid {grid} does not exist or is not one of your grids."),
    "patrol.future": ("时间在将来：请检查手机时钟。", "The time is in the future: check the phone's clock."),
    "patrol.end_before_start": ("结束时间早于开始时间。", "The patrol ends before it started."),
    "patrol.before_start": ("签到时间早于巡查开始时间。", "The check-in is before the patrol started."),
    "patrol.batch": ("每批最多上传 {most} 个定位点，请分批发送。", "At most {most} fixes per batch: send them in parts."),
    "patrol.too_long": ("一次巡查最多 {most} 个定位点：请结束本次巡查，再开始新的。",
                        "A patrol holds at most {most} fixes: end this one and start another."),
    "patrol.checkin_kind": ("只能在楼栋或卡口签到。", "Check in at a building or a checkpoint."),
    "patrol.checkin_target": ("{kind} {target} 不存在，或不在您的管辖范围内。",
                              "{kind} {target} does not exist or is not in your area."),
    "patrol.checkin_far": ("您距离{name}约 {distance_m} 米；请在 {max_m} 米以内签到。",
                           "You are {distance_m} m from {name}; check in within {max_m} m of it."),
    # -- the grid team and its tasks (issue 17 §1) ------------------------------------------------------------------
    "case.outside_buildings": ("楼栋长、单元长只能在自己负责的楼栋（{within_m} 米内）上报事件。",
                               "Building and unit heads report cases at their own buildings (within {within_m} m)."),
    "team.no_export": ("网格团队成员（警员、楼栋长等）只在外勤页面逐户查看住户，不能导出。",
                       "Grid-team members (police, building heads…) read households on the field page; they do not "
                       "export them."),
    "scorecards.division": ("请给出 12 位区划代码（区、街道或社区）或 14 位网格编码。", "Give a 12-digit division code (district, subdistrict or community) or a 14-digit grid code."),
    "team.grid_outside": ("该网格不在您的管辖范围内，或已撤销。", "That grid is not a current grid of your area."),
    "team.one_target": ("请只指定一个对象：网格、微网格或楼栋。", "Name exactly one of a grid, a micro-grid or a building."),
    "team.no_target": ("未找到 {target_kind} {target}。", "No {target_kind} {target}."),
    "team.no_user": ("没有名为 {username} 的在用账号。", "No active user {username}."),
    "team.duty": ("未知的职责。", "Unknown duty."),
    "team.contact": ("联系电话须为以 1 开头的 11 位手机号。", "A contact is an 11-digit mobile number starting with 1."),
    "team.unit": ("单元名称最多 20 个字符。", "A unit has at most 20 characters."),
    "team.duty_role": ("职责 {duty} 与账号角色 {role} 不符。", "The duty {duty} does not fit the account's role {role}."),
    "team.target": ("{duty} 不能分配到 {target_kind}（单元长须指定楼栋和单元）。",
                    "A {duty} cannot be assigned to a {target_kind} (a unit head needs a building and its unit)."),
    "team.duplicate": ("此人已在该处担任此职责。", "This person already has this duty there."),
    "team.no_assignment": ("未找到该分工，或不在您的管辖范围内。", "No such team assignment in your area."),
    "team.ended": ("该分工已经结束。", "This team assignment has already ended."),
    "team.division": ("区划代码为 12 位数字，网格代码为 14 位。", "A division code has 12 digits, a grid code 14."),
    "task.kind": ("未知的任务类型。", "Unknown task kind."),
    "task.target": ("任务须针对一户或一栋楼（只选其一）。", "A task is for one household or one building."),
    "task.due": ("截止日期 {due} 不在允许范围内（一周前至一年后）。", "The due day {due} is out of range (a week ago to a "
                 "year ahead)."),
    "task.note": ("备注最多 1000 个字符。", "A note has at most 1,000 characters."),
    "task.person": ("该人员不住在这一户。", "That person does not live in this household."),
    "task.no_grid": ("该楼栋不属于任何网格，没有服务团队。", "The building lies in no grid: it has no team."),
    "task.assignee": ("{assignee} 不是服务该处的团队成员。", "{assignee} is not on the team serving this place."),
    "task.unknown": ("未找到该任务，或它不是派给您的。", "No such task of yours or in your area."),
    "task.not_yours": ("只有任务的执行人、网格员或规划员可以标记完成。", "Only the task's assignee, a grid worker or a "
                       "planner marks it."),
    "task.limit": ("条数须为 1 至 1000。", "The limit is 1 to 1000."),
    "federation.city_code": ("城市代码为 4 位数字（省 2 位 + 市 2 位），收到 {got}。",
                             "A city code is 4 digits (province 2 + city 2), got {got}."),
    "federation.url": ("城市数据库的地址中没有数据库名。", "The city's URL names no database."),
    "federation.city_mismatch": ("该地址的数据库属于城市 {stated}，不是 {city}；未接入。",
                                 "The database at that URL serves city {stated}, not {city}; nothing was attached."),
    "federation.near": ("范围查询须给出经度 -180 至 180、纬度 -90 至 90 和 0 至 100000 米的距离。",
                        "Near needs a longitude -180 to 180, a latitude -90 to 90 and 0 to 100,000 metres."),
    "federation.by": ("汇总方式须为 city、district 或 community。", "Group by city, district or community."),
    "federation.division": ("区划代码前缀须为 4 至 12 位数字。", "A division is a code prefix of 4 to 12 digits."),
    "federation.no_city": ("本省库尚未接入任何城市（gridgov federation attach）。",
                           "No city is attached to this province (gridgov federation attach)."),
}


def placeholders(template: str) -> set[str]:
    """The ``{name}`` fields of a catalogue text."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(code: str, fields: dict[str, Any], lang: str = "zh") -> str | None:
    """The text of ``code`` in ``lang`` ('zh' or 'en') with its placeholders filled from ``fields`` (an error
    body); None when the code is unknown or a field is missing (the caller shows ``detail`` then)."""
    texts = MESSAGES.get(code)
    if texts is None:
        return None
    try:
        return texts[0 if lang == "zh" else 1].format(**fields)
    except (KeyError, IndexError, ValueError):
        return None
