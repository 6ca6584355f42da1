// The console's words in Chinese and English; field labels come from
// GET /v1/fields. The language is kept in localStorage.
const words = {
  zh: {
    builder: '人群圈选', segments: '人群', tags: '智能标签', exports: '导出任务', search: '客户搜索', logout: '退出',
    login: '登录', apiKey: 'API 密钥', loginHint: '输入管理员发给你的 API 密钥；它只保存在本标签页中。', badKey: '密钥无效',
    ssoLogin: '通过单点登录 (SSO) 登录', ssoHint: '或者用公司账号登录（OIDC）。', ssoWorking: '正在完成单点登录…',
    ssoFailed: '单点登录失败：', ssoState: '单点登录被拒绝：返回的 state 与本次登录不符，请重新登录。', ssoRejected: '单点登录的令牌未被接受，请联系管理员。',
    sessionExpired: '登录已过期，请重新登录。', sessionRejected: '登录已失效，请重新登录。',
    addCond: '+ 条件', addGroup: '+ 条件组', addOrder: '+ 同一订单', addAgg: '+ 聚合', addEvent: '+ 行为', addSegment: '+ 人群引用', addRaw: '+ JSON',
    all: '全部满足 (AND)', any: '任一满足 (OR)', not: '非', remove: '删除', pickField: '搜索字段…', value: '值', values: '值，用逗号分隔',
    from: '从', to: '到', lastN: '最近', days: '天', hours: '小时',
    groups: {profile: '客户资料', orders: '订单', items: '订单商品', events: '行为属性', attrs: '扩展属性'},
    orderAny: '至少一笔订单同时满足', orderNone: '没有一笔订单满足', orderAll: '每一笔订单都满足',
    aggOver: '在满足以下条件的订单上', fn: {count: '订单数', sum: '求和', avg: '平均', min: '最小', max: '最大'},
    event: '行为', eventName: '行为名称', within: '时间窗口', times: '次数', anyTime: '不限时间', eventWhere: '行为属性条件',
    segment: '属于人群', pickSegment: '选择人群…',
    preview: '预览', count: '人数', sample: '样本', showDSL: '查看 DSL', updating: '计算中…',
    saveName: '名称', saveSegment: '保存为人群', saveTag: '保存为标签规则', saved: '已保存', update: '更新',
    name: '名称', size: '人数', updated: '更新时间', actions: '操作', edit: '编辑', del: '删除', exportCSV: '导出 CSV', exportND: '导出 NDJSON',
    bom: 'Excel BOM', exportJob: '后台导出', confirmDel: '确定删除？', deleted: '已删除', noSegments: '还没有人群，去圈选一个吧。',
    description: '说明', status: '状态', progress: '进度', created: '创建时间', download: '下载', cancel: '取消', target: '对象',
    searchHint: '姓名、手机号片段（4 位以上）、邮箱或会员号', noResults: '没有找到客户',
    profile: '客户资料', identities: '身份', orders: '订单', metrics: '指标', tagsAndSegments: '标签与人群', events: '最近行为',
    idHistory: '身份合并记录', items: '商品', none: '无', live: '实时刷新中',
    f: {name: '姓名', phone: '手机号', email: '邮箱', gender: '性别', birthday: '生日', city: '城市', member_level: '会员等级',
      store_id: '门店', owner_id: '负责人', registered_at: '注册时间', customer_id: '客户ID'},
    m: {order_count: '订单数', total_spend: '消费总额', first_order_at: '首单', last_order_at: '最近下单', last_seen_at: '最近活跃'},
    ops: {
      eq: ['等于', '字段等于该值'], neq: ['不等于', '不等于该值；字段为空的客户也算在内'], in: ['属于', '等于其中任意一个值'],
      not_in: ['不属于', '不等于其中任何一个；字段为空的客户也算在内'], contains: ['包含', '包含该文字，不区分大小写'],
      not_contains: ['不包含', '不包含该文字；字段为空的客户也算在内'], starts_with: ['开头是', '以该文字开头，不区分大小写'],
      is_set: ['有值', '字段有值（非空）'], is_not_set: ['无值', '字段缺失、为空或空列表'],
      matches: ['匹配', '每个词都出现（全文检索）'], not_matches: ['不匹配', '不是每个词都出现；字段为空的客户也算在内'],
      gt: ['大于', '严格大于'], gte: ['大于等于', '大于或等于'], lt: ['小于', '严格小于'], lte: ['小于等于', '小于或等于'],
      between: ['介于', '两端都包含'], not_between: ['不介于', '不在该区间；字段为空的客户也算在内'],
      on: ['在当天', '按日历日（时区）比较'], not_on: ['不在当天', '不是那一天；字段为空的客户也算在内'],
      before: ['早于', '严格早于那一天（不含当天）'], after: ['晚于', '严格晚于那一天（不含当天）'],
      in_last: ['最近', '滚动窗口：从现在往前 N 天/小时'], not_in_last: ['不在最近', '不在该窗口内；字段为空的客户也算在内'],
      has_any: ['包含任一', '至少有其中一个'], has_none: ['不包含任何', '一个都没有；没有标签的客户也算在内'], has_all: ['包含全部', '每个都有'],
    },
  },
  en: {
    builder: 'Audience builder', segments: 'Segments', tags: 'Smart tags', exports: 'Exports', search: 'Search', logout: 'Log out',
    login: 'Log in', apiKey: 'API key', loginHint: 'Enter the API key your administrator gave you; it is kept in this tab only.', badKey: 'That key is not valid',
    ssoLogin: 'Log in with SSO', ssoHint: 'Or log in with your company account (OIDC).', ssoWorking: 'Completing the SSO login…',
    ssoFailed: 'The SSO login failed:', ssoState: 'SSO login refused: the state returned does not match this login. Please log in again.', ssoRejected: 'The SSO token was not accepted; ask your administrator.',
    sessionExpired: 'Your session has expired; please log in again.', sessionRejected: 'Your session is no longer valid; please log in again.',
    addCond: '+ Condition', addGroup: '+ Group', addOrder: '+ Same order', addAgg: '+ Aggregate', addEvent: '+ Event', addSegment: '+ Segment', addRaw: '+ JSON',
    all: 'All of (AND)', any: 'Any of (OR)', not: 'NOT', remove: 'Remove', pickField: 'Search fields…', value: 'value', values: 'values, comma separated',
    from: 'from', to: 'to', lastN: 'last', days: 'days', hours: 'hours',
    groups: {profile: 'Profile', orders: 'Orders', items: 'Order items', events: 'Event properties', attrs: 'Attributes'},
    orderAny: 'At least one order where all of', orderNone: 'No order where all of', orderAll: 'Every order where all of',
    aggOver: 'over the orders where', fn: {count: 'Number of orders', sum: 'Sum', avg: 'Average', min: 'Minimum', max: 'Maximum'},
    event: 'Event', eventName: 'event name', within: 'window', times: 'times', anyTime: 'all time', eventWhere: 'event property conditions',
    segment: 'Member of segment', pickSegment: 'Pick a segment…',
    preview: 'Preview', count: 'Customers', sample: 'Sample', showDSL: 'Show DSL', updating: 'Counting…',
    saveName: 'Name', saveSegment: 'Save as segment', saveTag: 'Save as tag rule', saved: 'Saved', update: 'Update',
    name: 'Name', size: 'Size', updated: 'Updated', actions: 'Actions', edit: 'Edit', del: 'Delete', exportCSV: 'Export CSV', exportND: 'Export NDJSON',
    bom: 'Excel BOM', exportJob: 'Background export', confirmDel: 'Delete it?', deleted: 'Deleted', noSegments: 'No segments yet: build one.',
    description: 'Description', status: 'Status', progress: 'Progress', created: 'Created', download: 'Download', cancel: 'Cancel', target: 'Audience',
    searchHint: 'Name, 4+ digits of a phone, email or CRM id', noResults: 'No customer found',
    profile: 'Profile', identities: 'Identities', orders: 'Orders', metrics: 'Metrics', tagsAndSegments: 'Tags and segments', events: 'Recent events',
    idHistory: 'Identity history', items: 'Items', none: 'none', live: 'live',
    f: {name: 'Name', phone: 'Phone', email: 'Email', gender: 'Gender', birthday: 'Birthday', city: 'City', member_level: 'Member level',
      store_id: 'Store', owner_id: 'Owner', registered_at: 'Registered', customer_id: 'Customer ID'},
    m: {order_count: 'Orders', total_spend: 'Total spend', first_order_at: 'First order', last_order_at: 'Last order', last_seen_at: 'Last seen'},
    ops: {
      eq: ['equals', 'the field equals the value'], neq: ['does not equal', 'anything but the value; customers without the field are included'],
      in: ['is one of', 'equals any of the values'], not_in: ['is none of', 'equals none of them; customers without the field are included'],
      contains: ['contains', 'contains the text, case-insensitive'], not_contains: ['does not contain', 'lacks the text; customers without the field are included'],
      starts_with: ['starts with', 'begins with the text, case-insensitive'],
      is_set: ['is set', 'the field has a value'], is_not_set: ['is not set', 'the field is missing, null or an empty list'],
      matches: ['matches', 'every word appears (full text)'], not_matches: ['does not match', 'not every word appears; customers without the field are included'],
      gt: ['>', 'strictly greater'], gte: ['≥', 'greater or equal'], lt: ['<', 'strictly less'], lte: ['≤', 'less or equal'],
      between: ['between', 'inclusive at both ends'], not_between: ['not between', 'outside the range; customers without the field are included'],
      on: ['on', 'the calendar day in the time zone'], not_on: ['not on', 'any other day; customers without the field are included'],
      before: ['before', 'strictly before that day (the day excluded)'], after: ['after', 'strictly after that day (the day excluded)'],
      in_last: ['in the last', 'rolling window: the last N days or hours up to now'], not_in_last: ['not in the last', 'outside the window; customers without the field are included'],
      has_any: ['has any of', 'at least one of them'], has_none: ['has none of', 'none of them; customers without tags are included'], has_all: ['has all of', 'every one of them'],
    },
  },
};

export let lang = localStorage.getItem('cdp.lang') || (navigator.language.startsWith('zh') ? 'zh' : 'en');

export function setLang(l) {
  lang = l;
  localStorage.setItem('cdp.lang', l);
  document.documentElement.lang = l;
}

// t looks a word up: t('builder'), t('ops.neq').
export function t(key) {
  let v = words[lang];
  for (const k of key.split('.')) v = v?.[k];
  return v ?? key;
}

// label is a {zh, en} label in the current language.
export function label(l, fallback) {
  return (l && (l[lang] || l.en || l.zh)) || fallback;
}
