// motcua-sms admin console: a single-page app over /api/v1 (docs/admin-api.md).
// Plain JavaScript, no framework, no build step; served by src/admin/web.rs
// under a CSP without inline scripts or styles. Hash routes:
// #/login #/password #/dashboard #/templates #/templates/NAME #/simulator
// #/messages #/lists #/channels #/accounts
"use strict";

(() => {
  // ---------------------------------------------------------------- strings
  const I18N = {
    vi: {
      brand: "Tra cứu hồ sơ qua SMS",
      skip: "Bỏ qua điều hướng",
      menu: "Menu",
      language: "Ngôn ngữ",
      logout: "Đăng xuất",
      loading: "Đang tải…",
      refresh: "Làm mới",
      auto_refresh: "Tự làm mới mỗi 30 giây",
      download_csv: "Tải CSV 30 ngày",
      none: "Không có",
      yes: "Có",
      you: "bạn",
      no: "Không",
      save: "Lưu",
      remove: "Xoá",
      add: "Thêm",
      close: "Đóng",
      up: "Hoạt động",
      down: "Ngừng",
      forbidden_page: "Vai trò của bạn không được xem trang này.",
      role_viewer: "Người xem",
      role_operator: "Vận hành viên",
      role_administrator: "Quản trị viên",
      // navigation
      nav_dashboard: "Tổng quan",
      nav_templates: "Mẫu tin nhắn",
      nav_simulator: "Thử tin nhắn",
      nav_messages: "Nhật ký tin nhắn",
      nav_lists: "Danh sách chặn",
      nav_channels: "Kênh và đồng bộ",
      nav_accounts: "Tài khoản",
      // login
      login_title: "Đăng nhập trang quản trị",
      username: "Tên đăng nhập",
      password: "Mật khẩu",
      login: "Đăng nhập",
      locked_until: "Tài khoản bị khoá đến {time}.",
      // password
      password_title: "Đổi mật khẩu",
      password_forced: "Bạn cần đổi mật khẩu trước khi tiếp tục.",
      password_current: "Mật khẩu hiện tại",
      password_new: "Mật khẩu mới",
      password_confirm: "Nhập lại mật khẩu mới",
      password_hint: "Ít nhất 12 ký tự, không chứa tên đăng nhập, ít nhất 5 ký tự khác nhau.",
      password_mismatch: "Hai mật khẩu mới không khớp.",
      password_changed: "Đã đổi mật khẩu.",
      password_change: "Đổi mật khẩu",
      // dashboard
      dash_title: "Tổng quan",
      chart_hour: "Tin nhắn mỗi giờ, 24 giờ qua",
      chart_day: "Tin nhắn mỗi ngày, 30 ngày qua",
      stack_by: "Xếp chồng theo",
      by_outcome: "Kết quả",
      by_channel: "Kênh",
      messages_total: "Tin nhắn",
      answered: "Đã trả lời",
      found: "Tìm thấy",
      not_found: "Không tìm thấy",
      other: "Khác",
      found_ratio: "Tỷ lệ tìm thấy",
      found_ratio_hint: "trong số tin có mã hồ sơ",
      latency: "Thời gian trả lời",
      samples: "mẫu đo",
      ussd_dialogue: "Phiên USSD (quay số đến màn hình cuối, không tính vào trên)",
      top_agencies: "Cơ quan được tra cứu nhiều nhất",
      top_procedures: "Thủ tục được tra cứu nhiều nhất",
      channels_card: "Kênh",
      sync_card: "Đồng bộ",
      smpp_up: "SMPP hoạt động",
      modems_up: "Modem hoạt động",
      sync_mode: "Chế độ",
      sync_stale: "Dữ liệu cũ",
      sync_fresh: "Dữ liệu mới",
      last_ok: "Lần đồng bộ tốt gần nhất",
      no_data: "Chưa có dữ liệu.",
      chart_empty: "Không có tin nhắn trong khoảng này.",
      // outcomes
      outcome_found: "Tìm thấy",
      outcome_not_found: "Không tìm thấy",
      outcome_help: "Hướng dẫn",
      outcome_invalid_date: "Ngày không hợp lệ",
      outcome_rate_limited: "Bị giới hạn",
      outcome_unavailable: "Gián đoạn",
      outcome_silenced: "Không trả lời",
      outcome_undecodable: "Không đọc được",
      outcome_not_a_phone_number: "Không phải số điện thoại",
      outcome_expired: "Quá hạn gửi",
      outcome_none: "Chưa có trả lời",
      // reply states
      state_queued: "Đang chờ gửi",
      state_sent: "Đã gửi",
      state_accepted: "Nhà mạng đã nhận",
      state_delivered: "Đã đến máy",
      state_failed: "Gửi không được",
      state_suppressed: "Không gửi",
      state_expired: "Quá hạn, không gửi",
      // templates
      tpl_title: "Mẫu tin nhắn",
      tpl_name: "Mẫu",
      tpl_file: "Tệp",
      tpl_origin: "Nguồn",
      tpl_active: "Phiên bản dùng",
      tpl_updated: "Cập nhật",
      tpl_budget: "Giới hạn (GSM-7 / UCS-2)",
      tpl_accents: "Có dấu",
      tpl_source: "Nội dung mẫu",
      tpl_variables: "Biến (bấm để chèn)",
      tpl_preview: "Xem trước",
      tpl_preview_updating: "Đang cập nhật…",
      tpl_estimate: "Phần chữ cố định: {chars} ký tự, {encoding}, ít nhất {segments} SMS (chưa tính biến)",
      tpl_line: "Dòng {line}",
      tpl_goto_line: "Đến dòng lỗi",
      tpl_note: "Ghi chú cho phiên bản",
      tpl_save_version: "Lưu phiên bản",
      tpl_saved: "Đã lưu phiên bản {id} (chưa dùng; bấm Kích hoạt để dùng).",
      tpl_activate: "Kích hoạt",
      tpl_activated: "Đang dùng phiên bản {id}.",
      tpl_rollback: "Quay lại phiên bản trước",
      tpl_rolled_back: "Đã quay lại: đang dùng {version}.",
      tpl_versions: "Các phiên bản",
      tpl_version: "Phiên bản",
      tpl_author: "Người tạo",
      tpl_created: "Thời gian",
      tpl_note_col: "Ghi chú",
      tpl_active_badge: "Đang dùng",
      tpl_load: "Mở",
      tpl_loaded: "Đã mở phiên bản {id} trong ô soạn thảo.",
      tpl_readonly: "Chỉ xem: vai trò của bạn không được sửa mẫu.",
      tpl_builtin: "có sẵn",
      tpl_fits: "Vừa",
      sample_owner: "Hỏi từ chính số điện thoại của người nộp hồ sơ",
      sample_stranger: "Hỏi từ một số khác",
      sample_stale: "Khi dữ liệu chưa được cập nhật",
      sample_sparse: "Hồ sơ mới, ít thông tin",
      sample_none: "Không có hồ sơ: chỉ thông tin chung",
      tpl_over: "Quá giới hạn",
      tpl_chars: "{n} ký tự",
      tpl_segments: "{n}/{budget} SMS",
      tpl_problem: "Lưu ý",
      tpl_reset: "Khôi phục nội dung đang dùng",
      tpl_no_versions: "Chưa có phiên bản nào được lưu.",
      // simulator
      sim_title: "Thử tin nhắn",
      sim_hint: "Gõ số điện thoại và tin nhắn của người dân để xem câu trả lời lúc này. Không gửi tin, không ghi nhật ký.",
      sim_from: "Số điện thoại người gửi",
      sim_text: "Tin nhắn",
      sim_send: "Gửi",
      sim_no_reply: "(không trả lời)",
      sim_owner: "chủ hồ sơ",
      sim_not_owner: "không phải chủ hồ sơ",
      sim_kind: "Loại",
      sim_code: "Mã",
      // messages
      msg_title: "Nhật ký tin nhắn",
      msg_code: "Mã hồ sơ",
      msg_sender: "Số gửi",
      msg_channel: "Kênh",
      msg_outcome: "Kết quả",
      msg_since: "Từ",
      msg_until: "Đến",
      msg_search: "Lọc",
      msg_clear: "Xoá bộ lọc",
      msg_more: "Xem thêm",
      msg_received: "Nhận lúc",
      msg_text: "Tin nhắn",
      msg_reply: "Trả lời",
      msg_raw_pdu: "PDU gốc (hex), không đọc được",
      msg_state: "Trạng thái",
      msg_latency: "Độ trễ",
      msg_purged: "(đã xoá theo thời hạn lưu)",
      msg_empty: "Không có tin nhắn nào khớp.",
      msg_end: "Hết danh sách.",
      // lists
      lists_title: "Danh sách chặn và cho phép",
      blocked: "Số bị chặn",
      allowed: "Số được cho phép",
      rate_limited_now: "Đang bị giới hạn tần suất",
      number: "Số điện thoại",
      reason: "Lý do",
      until: "Đến",
      minutes: "Số phút (để trống: vĩnh viễn)",
      created: "Tạo lúc",
      permanent: "Vĩnh viễn",
      block: "Chặn",
      unblock: "Bỏ chặn",
      allow: "Cho phép",
      blocked_done: "Đã chặn {number}.",
      unblocked_done: "Đã bỏ chặn {number}.",
      allowed_done: "Đã cho phép {number}.",
      unallowed_done: "Đã bỏ {number} khỏi danh sách cho phép.",
      // channels
      ch_title: "Kênh và đồng bộ",
      ch_smpp: "Kết nối SMPP",
      ch_modems: "Modem GSM",
      ch_sync: "Đồng bộ với hệ thống một cửa",
      ch_sources: "Nguồn",
      ch_nodes: "Các gateway dùng chung cơ sở dữ liệu",
      node_live: "Đang chạy",
      node_silent: "Mất nhịp",
      node_stopped: "Đã dừng",
      node_taken: "Đã được {node} tiếp quản",
      node_this: "gateway này",
      node_heartbeat: "Nhịp gần nhất",
      node_links: "Kết nối SMPP đang mở",
      // accounts
      acc_title: "Tài khoản",
      acc_role: "Vai trò",
      acc_status: "Tình trạng",
      acc_actions: "Thao tác",
      acc_create: "Tạo tài khoản",
      acc_initial_password: "Mật khẩu ban đầu (đổi khi đăng nhập lần đầu)",
      acc_created: "Đã tạo tài khoản {username}.",
      acc_disable: "Khoá",
      acc_enable: "Mở khoá",
      acc_unlock: "Gỡ khoá đăng nhập",
      acc_reset: "Đặt lại mật khẩu",
      acc_reset_done: "Đã đặt lại mật khẩu của {username}; phải đổi khi đăng nhập.",
      acc_disabled: "Bị khoá",
      acc_active: "Hoạt động",
      acc_locked: "Tạm khoá đến {time}",
      acc_must_change: "Phải đổi mật khẩu",
      acc_updated: "Đã cập nhật {username}.",
      audit_title: "Nhật ký thao tác",
      audit_at: "Thời gian",
      audit_actor: "Người làm",
      audit_action: "Thao tác",
      audit_target: "Đối tượng",
      audit_detail: "Chi tiết",
      // errors
      err_generic: "Có lỗi xảy ra.",
      err_network: "Không kết nối được với máy chủ.",
      err_bad_request: "Yêu cầu không hợp lệ.",
      err_invalid_template: "Mẫu không hợp lệ",
      err_over_budget: "Vượt quá số SMS cho phép",
      err_invalid_number: "Số điện thoại không hợp lệ.",
      err_invalid_query: "Bộ lọc không hợp lệ.",
      err_weak_password: "Mật khẩu chưa đủ mạnh",
      err_invalid_username: "Tên đăng nhập không hợp lệ (3–32 ký tự a-z, 0-9, '.', '_', '-').",
      err_not_logged_in: "Phiên đăng nhập đã hết. Vui lòng đăng nhập lại.",
      err_wrong_credentials: "Sai tên đăng nhập hoặc mật khẩu.",
      err_forbidden: "Vai trò của bạn không được làm việc này.",
      err_csrf: "Phiên làm việc không khớp; hãy tải lại trang.",
      err_password_change_required: "Bạn cần đổi mật khẩu trước.",
      err_not_found: "Không tìm thấy.",
      err_conflict: "Không thực hiện được",
      err_locked: "Tài khoản tạm bị khoá do nhập sai mật khẩu nhiều lần.",
      err_rate_limited: "Quá nhiều lần đăng nhập; vui lòng thử lại sau.",
    },
    en: {
      brand: "SMS dossier lookup",
      skip: "Skip navigation",
      menu: "Menu",
      language: "Language",
      logout: "Log out",
      loading: "Loading…",
      refresh: "Refresh",
      auto_refresh: "Refresh every 30 s",
      download_csv: "30 days as CSV",
      none: "None",
      yes: "Yes",
      you: "you",
      no: "No",
      save: "Save",
      remove: "Remove",
      add: "Add",
      close: "Close",
      up: "Up",
      down: "Down",
      forbidden_page: "Your role may not see this page.",
      role_viewer: "Viewer",
      role_operator: "Operator",
      role_administrator: "Administrator",
      nav_dashboard: "Dashboard",
      nav_templates: "Templates",
      nav_simulator: "Simulator",
      nav_messages: "Message log",
      nav_lists: "Lists",
      nav_channels: "Channels & sync",
      nav_accounts: "Accounts",
      login_title: "Sign in to the console",
      username: "Username",
      password: "Password",
      login: "Sign in",
      locked_until: "The account is locked until {time}.",
      password_title: "Change password",
      password_forced: "You must change your password before going on.",
      password_current: "Current password",
      password_new: "New password",
      password_confirm: "New password again",
      password_hint: "At least 12 characters, not containing the username, at least 5 different characters.",
      password_mismatch: "The two new passwords differ.",
      password_changed: "Password changed.",
      password_change: "Change password",
      dash_title: "Dashboard",
      chart_hour: "Messages per hour, last 24 hours",
      chart_day: "Messages per day, last 30 days",
      stack_by: "Stack by",
      by_outcome: "Outcome",
      by_channel: "Channel",
      messages_total: "Messages",
      answered: "Answered",
      found: "Found",
      not_found: "Not found",
      other: "Other",
      found_ratio: "Found ratio",
      found_ratio_hint: "of messages with a dossier code",
      latency: "Reply latency",
      samples: "samples",
      ussd_dialogue: "USSD dialogues (dial to final screen, not counted above)",
      top_agencies: "Most looked-up agencies",
      top_procedures: "Most looked-up procedures",
      channels_card: "Channels",
      sync_card: "Sync",
      smpp_up: "SMPP up",
      modems_up: "Modems up",
      sync_mode: "Mode",
      sync_stale: "Stale",
      sync_fresh: "Current",
      last_ok: "Last good sync",
      no_data: "No data yet.",
      chart_empty: "No messages in this range.",
      outcome_found: "Found",
      outcome_not_found: "Not found",
      outcome_help: "Help",
      outcome_invalid_date: "Invalid date",
      outcome_rate_limited: "Rate limited",
      outcome_unavailable: "Unavailable",
      outcome_silenced: "Silenced",
      outcome_undecodable: "Unreadable",
      outcome_not_a_phone_number: "Not a phone number",
      outcome_expired: "Expired",
      outcome_none: "No reply yet",
      // reply states
      state_queued: "Waiting to be sent",
      state_sent: "Sent",
      state_accepted: "Accepted by the carrier",
      state_delivered: "Delivered",
      state_failed: "Failed",
      state_suppressed: "Not sent",
      state_expired: "Expired, not sent",
      tpl_title: "Reply templates",
      tpl_name: "Template",
      tpl_file: "File",
      tpl_origin: "Origin",
      tpl_active: "Active version",
      tpl_updated: "Updated",
      tpl_budget: "Budget (GSM-7 / UCS-2)",
      tpl_accents: "Accents",
      tpl_source: "Template text",
      tpl_variables: "Variables (click to insert)",
      tpl_preview: "Preview",
      tpl_preview_updating: "Updating…",
      tpl_estimate: "Fixed text: {chars} characters, {encoding}, at least {segments} SMS (variables not counted)",
      tpl_line: "Line {line}",
      tpl_goto_line: "Go to the line",
      tpl_note: "Note for this version",
      tpl_save_version: "Save version",
      tpl_saved: "Version {id} saved (not in use; Activate puts it in use).",
      tpl_activate: "Activate",
      tpl_activated: "Version {id} is in use.",
      tpl_rollback: "Roll back",
      tpl_rolled_back: "Rolled back: {version} is in use.",
      tpl_versions: "Versions",
      tpl_version: "Version",
      tpl_author: "Author",
      tpl_created: "Time",
      tpl_note_col: "Note",
      tpl_active_badge: "Active",
      tpl_load: "Open",
      tpl_loaded: "Version {id} opened in the editor.",
      tpl_readonly: "Read only: your role may not change templates.",
      tpl_builtin: "built-in",
      tpl_fits: "Fits",
      sample_owner: "Asked from the applicant's own number",
      sample_stranger: "Asked from another number",
      sample_stale: "While the data is not current",
      sample_sparse: "A new dossier with few details",
      sample_none: "No dossier: only the service-wide details",
      tpl_over: "Over budget",
      tpl_chars: "{n} characters",
      tpl_segments: "{n}/{budget} SMS",
      tpl_problem: "Note",
      tpl_reset: "Back to the text in use",
      tpl_no_versions: "No version saved yet.",
      sim_title: "Phone simulator",
      sim_hint: "Type a citizen's number and message to see the reply they would get now. Nothing is sent or journaled.",
      sim_from: "Sender's number",
      sim_text: "Message",
      sim_send: "Send",
      sim_no_reply: "(no reply)",
      sim_owner: "dossier owner",
      sim_not_owner: "not the owner",
      sim_kind: "Kind",
      sim_code: "Code",
      msg_title: "Message log",
      msg_code: "Dossier code",
      msg_sender: "Sender",
      msg_channel: "Channel",
      msg_outcome: "Outcome",
      msg_since: "From",
      msg_until: "To",
      msg_search: "Filter",
      msg_clear: "Clear filters",
      msg_more: "More",
      msg_received: "Received",
      msg_text: "Message",
      msg_reply: "Reply",
      msg_raw_pdu: "Raw PDU (hex), unreadable",
      msg_state: "State",
      msg_latency: "Latency",
      msg_purged: "(purged after the retention period)",
      msg_empty: "No matching messages.",
      msg_end: "End of the log.",
      lists_title: "Block and allow lists",
      blocked: "Blocked numbers",
      allowed: "Allowed numbers",
      rate_limited_now: "Rate limited now",
      number: "Phone number",
      reason: "Reason",
      until: "Until",
      minutes: "Minutes (empty: permanent)",
      created: "Created",
      permanent: "Permanent",
      block: "Block",
      unblock: "Unblock",
      allow: "Allow",
      blocked_done: "{number} blocked.",
      unblocked_done: "{number} unblocked.",
      allowed_done: "{number} allowed.",
      unallowed_done: "{number} removed from the allow list.",
      ch_title: "Channels and sync",
      ch_smpp: "SMPP links",
      ch_modems: "GSM modems",
      ch_sync: "Sync with the one-stop core",
      ch_sources: "Sources",
      ch_nodes: "Gateways sharing the database",
      node_live: "Running",
      node_silent: "Heartbeat missed",
      node_stopped: "Stopped",
      node_taken: "Taken over by {node}",
      node_this: "this gateway",
      node_heartbeat: "Last heartbeat",
      node_links: "Open SMPP links",
      acc_title: "Accounts",
      acc_role: "Role",
      acc_status: "Status",
      acc_actions: "Actions",
      acc_create: "Create account",
      acc_initial_password: "Initial password (changed at first login)",
      acc_created: "Account {username} created.",
      acc_disable: "Disable",
      acc_enable: "Enable",
      acc_unlock: "Unlock",
      acc_reset: "Reset password",
      acc_reset_done: "Password of {username} reset; it must be changed at login.",
      acc_disabled: "Disabled",
      acc_active: "Active",
      acc_locked: "Locked until {time}",
      acc_must_change: "Must change password",
      acc_updated: "{username} updated.",
      audit_title: "Audit log",
      audit_at: "Time",
      audit_actor: "Actor",
      audit_action: "Action",
      audit_target: "Target",
      audit_detail: "Detail",
      err_generic: "Something went wrong.",
      err_network: "The server cannot be reached.",
      err_bad_request: "The request is not valid.",
      err_invalid_template: "Invalid template",
      err_over_budget: "Over the SMS budget",
      err_invalid_number: "Not a valid phone number.",
      err_invalid_query: "The filter is not valid.",
      err_weak_password: "Password too weak",
      err_invalid_username: "Not a valid username (3–32 of a-z, 0-9, '.', '_', '-').",
      err_not_logged_in: "Your session ended. Please sign in again.",
      err_wrong_credentials: "Wrong username or password.",
      err_forbidden: "Your role may not do this.",
      err_csrf: "Session mismatch; reload the page.",
      err_password_change_required: "You must change your password first.",
      err_not_found: "Not found.",
      err_conflict: "Cannot do that",
      err_locked: "The account is locked after repeated wrong passwords.",
      err_rate_limited: "Too many sign-ins; try again later.",
    },
  };
  // Codes whose server message carries the detail that matters (a line, a
  // sample, a reason): shown after the translated label.
  const DETAILED = new Set(["invalid_template", "over_budget", "weak_password", "conflict", "bad_request"]);

  const TZ = "Asia/Ho_Chi_Minh";
  const HOUR = 3600e3;
  const DAY = 24 * HOUR;
  const VN_OFFSET = 7 * HOUR; // Vietnam has no daylight saving time
  const AUTO_REFRESH_MS = 30e3;
  const OUTCOME_ORDER = ["found", "not_found", "help", "invalid_date", "rate_limited", "unavailable", "silenced", "not_a_phone_number", "undecodable", "expired", "none"];
  // Channel names start with these (`smsc:<link>`, `listener:<account>`, …); the log filters by prefix.
  const CHANNEL_HINTS = ["smsc:", "listener:", "modem:", "kannel", "ussd:"];
  const ROLE_RANK = { viewer: 0, operator: 1, administrator: 2 };
  const PAGES = [
    { name: "dashboard", role: "viewer", render: renderDashboard },
    { name: "templates", role: "viewer", render: renderTemplates },
    { name: "simulator", role: "operator", render: renderSimulator },
    { name: "messages", role: "viewer", render: renderMessages },
    { name: "lists", role: "viewer", render: renderLists },
    { name: "channels", role: "viewer", render: renderChannels },
    { name: "accounts", role: "administrator", render: renderAccounts },
  ];

  const state = {
    lang: "vi",
    session: null,
    after: null, // the route to go to after login
    cleanup: [], // timers of the page on screen
    drafts: Object.create(null), // template name -> text being edited
    stackBy: "outcome",
    autoRefresh: true, // the dashboard and channels re-read themselves
  };

  // ---------------------------------------------------------------- helpers
  function t(key, vars) {
    let s = (I18N[state.lang] && I18N[state.lang][key]) || I18N.vi[key] || key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) s = s.split("{" + k + "}").join(String(v));
    }
    return s;
  }

  /** A preview sample's caption in the console's language (the server's
   *  English label for a sample this page does not know). */
  function sampleLabel(x) {
    const key = "sample_" + (x.sample || "");
    const text = t(key);
    return text !== key ? text : (x.label || x.sample || "");
  }

  function locale() {
    return state.lang === "vi" ? "vi-VN" : "en-GB";
  }

  /** Builds an element: h("button", {class, "data-test", onclick}, children…). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    setProps(el, props);
    append(el, children);
    return el;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
    append(el, children);
    return el;
  }

  const PROPS = new Set(["value", "checked", "disabled", "hidden", "readOnly", "required", "selected", "multiple"]);
  function setProps(el, props) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (PROPS.has(k)) el[k] = v;
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  let uid = 0;
  function nextId(prefix) {
    uid += 1;
    return prefix + "-" + uid;
  }

  /** A labelled field: h("label") + control, with the control's id tied. */
  function field(label, control, hint) {
    if (!control.id) control.id = nextId("f");
    const wrap = h("div", { class: "field" }, h("label", { for: control.id }, label), control);
    if (hint) {
      const hid = nextId("hint");
      control.setAttribute("aria-describedby", hid);
      wrap.append(h("p", { class: "hint", id: hid }, hint));
    }
    return wrap;
  }

  function toMs(v) {
    if (v == null || v === "") return null;
    if (typeof v === "number") return v < 1e11 ? v * 1000 : v;
    if (typeof v === "string" && /^\d+$/.test(v)) return toMs(Number(v));
    const ms = Date.parse(v);
    return Number.isNaN(ms) ? null : ms;
  }

  const STAMP = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };

  /** A time in Vietnam: dd/mm/yyyy hh:mm:ss by default, or as `opts` says. */
  function fmtTime(v, opts) {
    const ms = toMs(v);
    if (ms == null) return "—";
    if (opts) return new Intl.DateTimeFormat(locale(), { timeZone: TZ, ...opts }).format(new Date(ms));
    const p = Object.fromEntries(new Intl.DateTimeFormat("en-GB", { timeZone: TZ, ...STAMP }).formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    return `${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}:${p.second}`;
  }

  function timeEl(v, opts) {
    const ms = toMs(v);
    if (ms == null) return "—";
    return h("time", { datetime: new Date(ms).toISOString() }, fmtTime(ms, opts));
  }

  function fmtNum(n) {
    if (n == null || Number.isNaN(n)) return "—";
    return new Intl.NumberFormat(locale()).format(n);
  }

  function fmtMs(n) {
    if (n == null) return "—";
    if (n >= 10000) return fmtNum(Math.round(n / 100) / 10) + " s";
    return fmtNum(Math.round(n)) + " ms";
  }

  function fmtPct(r) {
    if (r == null || Number.isNaN(r)) return "—";
    return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 1 }).format(r);
  }

  /** A `datetime-local` value read as Vietnam time, in Unix ms. */
  function vnLocalToMs(value) {
    if (!value) return null;
    const ms = Date.parse(value + (value.length === 16 ? ":00" : "") + "Z");
    return Number.isNaN(ms) ? null : ms - VN_OFFSET;
  }

  /** An outcome's words: `found`, or one with a reason (`silenced: blocked`). */
  function outcomeLabel(o) {
    const [base, ...reason] = String(o).split(":");
    const k = "outcome_" + base.trim();
    if (!I18N.vi[k]) return o;
    return reason.length ? `${t(k)} (${reason.join(":").trim()})` : t(k);
  }

  /** A reply state's words (`sent`, `expired`, …); an unknown one as stored. */
  function stateLabel(st) {
    return I18N.vi["state_" + st] ? t("state_" + st) : st;
  }

  function roleLabel(r) {
    return I18N.vi["role_" + r] ? t("role_" + r) : r;
  }

  function hasRole(min) {
    return !!state.session && (ROLE_RANK[state.session.role] ?? -1) >= ROLE_RANK[min];
  }

  function debounce(fn, ms) {
    let timer = null;
    const wrapped = (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
    wrapped.cancel = () => clearTimeout(timer);
    return wrapped;
  }

  // ---------------------------------------------------------------- SMS counts
  // GSM 03.38 default alphabet and its extension table (those count 2).
  const GSM7_BASIC = new Set(
    Array.from("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
  );
  const GSM7_EXT = new Set(Array.from("\f^{}\\[~]|€"));

  /** What a text costs as SMS: encoding, characters (septets or UTF-16 units), segments. */
  function smsCount(text) {
    let septets = 0;
    let gsm = true;
    for (const ch of text) {
      if (GSM7_BASIC.has(ch)) septets += 1;
      else if (GSM7_EXT.has(ch)) septets += 2;
      else {
        gsm = false;
        break;
      }
    }
    if (gsm) {
      return { encoding: "GSM-7", characters: septets, segments: septets === 0 ? 0 : septets <= 160 ? 1 : Math.ceil(septets / 153) };
    }
    const units = text.length;
    return { encoding: "UCS-2", characters: units, segments: units <= 70 ? 1 : Math.ceil(units / 67) };
  }

  /** The fixed text of a minijinja template: comments, tags and expressions dropped. */
  function staticText(source) {
    return source
      .replace(/\{#[\s\S]*?#\}\n?/g, "")
      .replace(/\{%[\s\S]*?%\}\n?/g, "")
      .replace(/\{\{[\s\S]*?\}\}/g, "")
      .replace(/^\n+|\n+$/g, "");
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || "HTTP " + status);
      this.status = status;
      this.code = (body && body.error) || (status === 0 ? "network" : "generic");
      this.body = body || {};
    }
  }
  // Thrown when a response moved the user elsewhere (login, password page).
  class Redirected extends Error {}

  async function api(method, path, body, opts) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && state.session && state.session.csrf_token) headers["X-CSRF-Token"] = state.session.csrf_token;
    let res;
    try {
      res = await fetch("api/v1/" + path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, null);
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = { error: "generic", message: text.slice(0, 200) };
      }
    }
    if (res.ok) return data;
    const err = new ApiError(res.status, data);
    const quiet = opts && opts.noRedirect;
    if (!quiet && res.status === 401) {
      state.session = null;
      if (!location.hash.startsWith("#/login")) {
        state.after = location.hash;
        flash(t("err_not_logged_in"), "error", true);
        location.hash = "#/login";
      }
      throw new Redirected();
    }
    if (!quiet && res.status === 403 && err.code === "password_change_required") {
      if (state.session) state.session.must_change_password = true;
      location.hash = "#/password";
      throw new Redirected();
    }
    throw err;
  }

  function errorText(e) {
    if (!(e instanceof ApiError)) return t("err_generic") + " " + (e && e.message ? e.message : "");
    const key = "err_" + e.code;
    if (e.code === "locked" && e.body.retry_at) return t("locked_until", { time: fmtTime(e.body.retry_at) });
    if (I18N.vi[key]) {
      if (DETAILED.has(e.code) && e.body.message) return t(key) + ": " + e.body.message;
      return t(key);
    }
    return e.body.message || t("err_generic");
  }

  /** Runs an action, showing its failure; Redirected is silent. */
  async function attempt(fn, where) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof Redirected) return undefined;
      const msg = errorText(e);
      if (where) showError(where, msg);
      else flash(msg, "error");
      return undefined;
    }
  }

  function showError(where, msg) {
    clear(where);
    where.hidden = false;
    where.append(msg);
  }

  let flashTimer = null;
  let flashKeep = false;
  /** Says `msg` under the header; `keep`: through the next change of page. */
  function flash(msg, kind, keep) {
    const el = document.getElementById("flash");
    flashKeep = !!(msg && keep);
    clear(el);
    el.dataset.kind = msg ? kind || "ok" : "";
    el.className = msg ? "flash " + (kind || "ok") : "flash";
    if (msg) el.append(h("span", null, msg), h("button", { type: "button", class: "link", "aria-label": t("close"), onclick: () => flash("") }, "×"));
    clearTimeout(flashTimer);
    if (msg) flashTimer = setTimeout(() => flash(""), kind === "error" ? 12000 : 6000);
  }

  // ---------------------------------------------------------------- shell
  function applyStaticStrings() {
    document.documentElement.lang = state.lang;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    document.getElementById("lang").value = state.lang;
  }

  function renderShell(current) {
    const nav = document.getElementById("nav");
    const toggle = document.querySelector(".nav-toggle");
    const who = document.querySelector(".whoami");
    const logout = document.getElementById("logout");
    clear(nav);
    const inside = !!state.session && !state.session.must_change_password;
    nav.hidden = !inside;
    toggle.hidden = !inside;
    logout.hidden = !state.session;
    who.hidden = !state.session;
    if (state.session) {
      clear(who).append(
        h("a", { class: "user", href: "#/password", title: t("password_change"), "data-test": "whoami-password" }, state.session.username),
        " · ", roleLabel(state.session.role));
    }
    if (!inside) return;
    const ul = h("ul");
    for (const p of PAGES) {
      if (!hasRole(p.role)) continue;
      ul.append(
        h("li", null,
          h("a", { href: "#/" + p.name, "data-test": "nav-" + p.name, "aria-current": p.name === current ? "page" : null }, t("nav_" + p.name)))
      );
    }
    nav.append(ul);
  }

  function closeNav() {
    document.querySelector(".top").classList.remove("open");
    document.querySelector(".nav-toggle").setAttribute("aria-expanded", "false");
  }

  function page(name, title, ...children) {
    const main = clear(document.getElementById("main"));
    const section = h("section", { class: "page page-" + name, "data-test": "page-" + name, "aria-labelledby": "page-title" },
      h("h1", { id: "page-title" }, title), ...children);
    main.append(section);
    document.title = title + " · motcua-sms";
    return section;
  }

  function card(title, testId, ...children) {
    return h("section", { class: "card", "data-test": testId }, title ? h("h2", null, title) : null, ...children);
  }

  function loadingEl() {
    return h("p", { class: "muted", "data-test": "loading" }, t("loading"));
  }

  function badge(text, kind, testId) {
    return h("span", { class: "badge " + (kind || ""), "data-test": testId || null }, text);
  }

  // ---------------------------------------------------------------- router
  async function route() {
    for (const fn of state.cleanup.splice(0)) fn();
    closeNav();
    // A message belongs to the page it was said on, or to the move that led here.
    if (flashKeep) flashKeep = false;
    else flash("");
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    const name = parts[0] || "dashboard";
    if (name === "login") {
      renderShell(null);
      return renderLogin();
    }
    if (!state.session) {
      try {
        state.session = await api("GET", "session", undefined, { noRedirect: true });
      } catch (e) {
        state.after = location.hash && !location.hash.startsWith("#/password") ? location.hash : null;
        location.hash = "#/login";
        return undefined;
      }
    }
    if (state.session.must_change_password && name !== "password") {
      location.hash = "#/password";
      return undefined;
    }
    renderShell(name);
    if (name === "password") return renderPassword();
    const p = PAGES.find((x) => x.name === name);
    if (!p) {
      location.hash = "#/dashboard";
      return undefined;
    }
    if (!hasRole(p.role)) {
      page(p.name, t("nav_" + p.name), h("p", { class: "notice", "data-test": "forbidden" }, t("forbidden_page")));
      return undefined;
    }
    try {
      await p.render(parts.slice(1));
    } catch (e) {
      if (!(e instanceof Redirected)) {
        console.error(e);
        flash(errorText(e), "error");
      }
    }
    return undefined;
  }

  function rerender() {
    applyStaticStrings();
    route();
  }

  // ---------------------------------------------------------------- login
  // The switch that re-reads the page on screen every AUTO_REFRESH_MS while
  // it is on and the tab is visible (a hidden tab waits for its next turn),
  // keeping the reader's scroll position. Leaving the page stops it.
  function autoRefreshSwitch() {
    const box = h("input", { type: "checkbox", "data-test": "auto-refresh", checked: state.autoRefresh });
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      if (!state.autoRefresh) return;
      timer = setTimeout(async () => {
        if (document.hidden) return arm();
        const y = window.scrollY;
        await route();
        window.scrollTo(0, y);
        return undefined;
      }, AUTO_REFRESH_MS);
    };
    box.addEventListener("change", () => {
      state.autoRefresh = box.checked;
      localStorage.setItem("motcua.autoRefresh", box.checked ? "on" : "off");
      arm();
    });
    state.cleanup.push(() => clearTimeout(timer));
    arm();
    return h("label", { class: "switch" }, box, t("auto_refresh"));
  }

  function renderLogin() {
    const user = h("input", { name: "username", autocomplete: "username", required: true, "data-test": "login-username", autocapitalize: "none", spellcheck: "false" });
    const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "data-test": "login-password" });
    const error = h("p", { class: "error", role: "alert", "data-test": "login-error", hidden: true });
    const button = h("button", { type: "submit", class: "primary", "data-test": "login-submit" }, t("login"));
    const form = h("form", { class: "narrow card", "data-test": "login-form", novalidate: false },
      field(t("username"), user), field(t("password"), pass), error, button);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      button.disabled = true;
      try {
        const session = await api("POST", "session", { username: user.value.trim(), password: pass.value }, { noRedirect: true });
        state.session = session && session.username ? session : await api("GET", "session", undefined, { noRedirect: true });
        pass.value = "";
        flash("");
        const next = state.after && !/^#\/(login|password)/.test(state.after) ? state.after : "#/dashboard";
        state.after = null;
        location.hash = state.session.must_change_password ? "#/password" : next;
      } catch (e) {
        showError(error, errorText(e));
        pass.select();
      } finally {
        button.disabled = false;
      }
    });
    page("login", t("login_title"), form);
    user.focus();
  }

  async function logout() {
    try {
      await api("DELETE", "session", undefined, { noRedirect: true });
    } catch (e) {
      // the session may already be gone; the user is out either way
    }
    state.session = null;
    state.drafts = Object.create(null);
    location.hash = "#/login";
  }

  // ---------------------------------------------------------------- password
  function renderPassword() {
    const current = h("input", { type: "password", autocomplete: "current-password", required: true, "data-test": "password-current" });
    const next = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: "12", "data-test": "password-new" });
    const again = h("input", { type: "password", autocomplete: "new-password", required: true, "data-test": "password-confirm" });
    const error = h("p", { class: "error", role: "alert", "data-test": "password-error", hidden: true });
    const button = h("button", { type: "submit", class: "primary", "data-test": "password-submit" }, t("password_change"));
    const form = h("form", { class: "narrow card", "data-test": "password-form" },
      state.session && state.session.must_change_password ? h("p", { class: "notice", "data-test": "password-forced" }, t("password_forced")) : null,
      field(t("password_current"), current), field(t("password_new"), next, t("password_hint")), field(t("password_confirm"), again), error, button);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      if (next.value !== again.value) return showError(error, t("password_mismatch"));
      button.disabled = true;
      try {
        await api("POST", "session/password", { current: current.value, new: next.value }, { noRedirect: true });
        state.session = await api("GET", "session");
        flash(t("password_changed"), "ok", true);
        location.hash = "#/dashboard";
      } catch (e) {
        if (!(e instanceof Redirected)) showError(error, errorText(e));
      } finally {
        button.disabled = false;
      }
      return undefined;
    });
    page("password", t("password_title"), form);
    current.focus();
  }

  // ---------------------------------------------------------------- dashboard
  async function renderDashboard() {
    const by = h("select", { "data-test": "stack-by" },
      h("option", { value: "outcome", selected: state.stackBy === "outcome" }, t("by_outcome")),
      h("option", { value: "channel", selected: state.stackBy === "channel" }, t("by_channel")));
    const hourBox = card(t("chart_hour"), "chart-hour", loadingEl());
    const dayBox = card(t("chart_day"), "chart-day", loadingEl());
    const totals = h("div", { class: "cards" }, loadingEl());
    const tops = h("div", { class: "cards two" });
    const status = h("div", { class: "cards two" });
    const now = Date.now();
    const hourSince = Math.floor(now / HOUR) * HOUR - 23 * HOUR;
    const vnMidnight = Math.floor((now + VN_OFFSET) / DAY) * DAY - VN_OFFSET;
    const daySince = vnMidnight - 29 * DAY;
    page("dashboard", t("dash_title"),
      h("div", { class: "toolbar" }, field(t("stack_by"), by),
        h("button", { type: "button", "data-test": "refresh", onclick: () => route() }, t("refresh")),
        h("a", { class: "button", "data-test": "stats-csv", download: "", href: `api/v1/stats.csv?since=${daySince}&until=${now}&bucket=day` }, t("download_csv")),
        autoRefreshSwitch()),
      totals, hourBox, dayBox, tops, status);
    const [hourly, daily, channels, sync] = await Promise.all([
      api("GET", `stats?since=${hourSince}&until=${now}&bucket=hour`).catch(keep),
      api("GET", `stats?since=${daySince}&until=${now}&bucket=day`).catch(keep),
      api("GET", "channels").catch(keep),
      api("GET", "sync").catch(keep),
    ]);

    const draw = () => {
      // Drawn at the card's own width, so the axis text keeps its size.
      const width = Math.max(320, Math.round(hourBox.clientWidth - 36));
      clear(hourBox).append(h("h2", null, t("chart_hour")), failed(hourly) || chart(hourly, HOUR, state.stackBy, "hour", width));
      clear(dayBox).append(h("h2", null, t("chart_day")), failed(daily) || chart(daily, DAY, state.stackBy, "day", width));
    };
    by.addEventListener("change", () => {
      state.stackBy = by.value;
      draw();
    });
    draw();

    clear(totals);
    const src = failed(daily) ? null : daily;
    if (src) {
      const tot = src.totals || {};
      const ratio = src.found_ratio ?? (tot.found + tot.not_found ? tot.found / (tot.found + tot.not_found) : null);
      const lat = src.latency_ms || {};
      totals.append(
        card(t("messages_total"), "card-totals",
          h("p", { class: "big" }, fmtNum(tot.messages)),
          h("dl", { class: "pairs" },
            h("dt", null, t("answered")), h("dd", null, fmtNum(tot.answered)),
            h("dt", null, t("found")), h("dd", null, fmtNum(tot.found)),
            h("dt", null, t("not_found")), h("dd", null, fmtNum(tot.not_found)),
            h("dt", null, t("other")), h("dd", null, fmtNum(tot.other)))),
        card(t("found_ratio"), "found-ratio",
          h("p", { class: "big" }, fmtPct(ratio)),
          ratioBar(tot.found || 0, tot.not_found || 0),
          h("p", { class: "hint" }, t("found_ratio_hint"))),
        card(t("latency"), "latency",
          h("dl", { class: "pairs" },
            h("dt", null, "p50"), h("dd", { "data-test": "latency-p50" }, fmtMs(lat.p50)),
            h("dt", null, "p90"), h("dd", null, fmtMs(lat.p90)),
            h("dt", null, "p99"), h("dd", null, fmtMs(lat.p99)),
            h("dt", null, "max"), h("dd", null, fmtMs(lat.max))),
          h("p", { class: "hint" }, fmtNum(lat.samples || 0), " ", t("samples")),
          ussdDialogues(src.ussd_dialogue_ms)));
      tops.append(topList(t("top_agencies"), "top-agencies", src.top_agencies),
        topList(t("top_procedures"), "top-procedures", src.top_procedures));
    } else {
      totals.append(failed(daily));
    }
    status.append(channelSummary(channels), syncSummary(sync));
  }

  // The USSD dialogues' length under the reply latency, when there were any.
  function ussdDialogues(d) {
    if (!d || !d.samples) return null;
    return h("p", { class: "hint", "data-test": "ussd-dialogue" }, t("ussd_dialogue"), ": p50 ", fmtMs(d.p50),
      " · p90 ", fmtMs(d.p90), " · max ", fmtMs(d.max), " (", fmtNum(d.samples), " ", t("samples"), ")");
  }

  // Keeps a failed request's error in place of its answer.
  function keep(e) {
    if (e instanceof Redirected) throw e;
    return { __error: e };
  }

  function failed(x) {
    return x && x.__error ? h("p", { class: "error", role: "alert" }, errorText(x.__error)) : null;
  }

  function ratioBar(found, notFound) {
    const total = found + notFound;
    const w = 300;
    const fw = total ? (found / total) * w : 0;
    return s("svg", { viewBox: `0 0 ${w} 14`, preserveAspectRatio: "none", class: "ratio", role: "img", "aria-label": `${t("found")} ${found}, ${t("not_found")} ${notFound}` },
      s("rect", { x: 0, y: 0, width: w, height: 14, rx: 3, class: "s1" }),
      s("rect", { x: 0, y: 0, width: fw.toFixed(1), height: 14, rx: 3, class: "s0" }));
  }

  function topList(title, testId, items) {
    const list = items || [];
    if (!list.length) return card(title, testId, h("p", { class: "muted" }, t("no_data")));
    const max = Math.max(...list.map((x) => x.count || 0), 1);
    return card(title, testId,
      h("ol", { class: "top" },
        list.map((x) => h("li", null,
          h("span", { class: "top-name" }, x.name || "—"),
          h("span", { class: "top-count" }, fmtNum(x.count)),
          h("meter", { min: "0", max: String(max), value: String(x.count || 0), "aria-hidden": "true" })))));
  }

  /** The stacked bar chart of a stats answer, as inline SVG. */
  function chart(stats, step, by, kind, width) {
    const since = toMs(stats.since);
    const until = toMs(stats.until);
    const series = (stats.series || []).map((p) => ({ ...p, start: toMs(p.start) }));
    const anchor = series.length ? series[0].start : kind === "day" ? Math.floor((since + VN_OFFSET) / DAY) * DAY - VN_OFFSET : Math.floor(since / step) * step;
    let first = anchor - Math.floor((anchor - since) / step) * step;
    if (first > since) first -= step;
    const n = Math.max(1, Math.min(400, Math.ceil((until - first) / step)));
    const keys = [];
    const sums = new Array(n).fill(0);
    const cells = Array.from({ length: n }, () => Object.create(null));
    for (const p of series) {
      const key = (by === "channel" ? p.channel : p.outcome) || "none";
      if (!keys.includes(key)) keys.push(key);
      const i = Math.min(n - 1, Math.max(0, Math.floor((p.start - first) / step)));
      cells[i][key] = (cells[i][key] || 0) + (p.count || 0);
      sums[i] += p.count || 0;
    }
    const order = by === "outcome" ? OUTCOME_ORDER : [];
    keys.sort((a, b) => rank(order, a.split(":")[0]) - rank(order, b.split(":")[0]) || a.localeCompare(b));
    const label = (k) => (by === "outcome" ? outcomeLabel(k) : k);
    const W = width || 720;
    const H = 220;
    const L = 44;
    const B = 26;
    const T = 8;
    const R = 8;
    const pw = W - L - R;
    const ph = H - T - B;
    const max = niceMax(Math.max(...sums, 0));
    const bw = pw / n;
    const total = sums.reduce((a, b) => a + b, 0);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-test": "chart-svg", "data-total": total,
      "aria-label": `${kind === "hour" ? t("chart_hour") : t("chart_day")}: ${fmtNum(total)} ${t("messages_total").toLowerCase()}` });
    for (let i = 0; i <= 4; i += 1) {
      const v = (max / 4) * i;
      const y = T + ph - (v / max) * ph;
      svg.append(s("line", { x1: L, x2: W - R, y1: y.toFixed(1), y2: y.toFixed(1), class: "grid" }),
        s("text", { x: L - 6, y: (y + 4).toFixed(1), class: "axis", "text-anchor": "end" }, fmtNum(v)));
    }
    const every = Math.ceil(n / Math.max(2, Math.floor(W / (kind === "hour" ? 70 : 60))));
    const fmt = kind === "hour" ? { hour: "2-digit", minute: "2-digit", hour12: false } : { day: "2-digit", month: "2-digit" };
    for (let i = 0; i < n; i += 1) {
      const x = L + i * bw;
      const start = first + i * step;
      let y = T + ph;
      const g = s("g", { class: "bar" });
      for (const [ki, key] of keys.entries()) {
        const c = cells[i][key] || 0;
        if (!c) continue;
        const hgt = (c / max) * ph;
        y -= hgt;
        g.append(s("rect", { x: (x + bw * 0.1).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw * 0.8).toFixed(1), height: hgt.toFixed(1), class: "s" + (ki % 8) },
          s("title", null, `${fmtTime(start, fmt)} · ${label(key)}: ${fmtNum(c)}`)));
      }
      svg.append(g);
      if (i % every === 0) {
        svg.append(s("text", { x: (x + bw / 2).toFixed(1), y: H - 8, class: "axis", "text-anchor": "middle" }, fmtTime(start, fmt)));
      }
    }
    svg.append(s("line", { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: "baseline" }));
    const legend = h("ul", { class: "legend", "data-test": "chart-legend" },
      keys.map((k, ki) => h("li", null, h("span", { class: "swatch s" + (ki % 8), "aria-hidden": "true" }), label(k))));
    return h("div", { class: "chart-wrap" }, svg, total ? legend : h("p", { class: "muted" }, t("chart_empty")));
  }

  function rank(order, key) {
    const i = order.indexOf(key);
    return i < 0 ? order.length : i;
  }

  function niceMax(v) {
    if (v <= 4) return 4;
    const mag = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= v) return Math.ceil((m * mag) / 4) * 4;
    return v;
  }

  function channelSummary(channels) {
    if (failed(channels)) return card(t("channels_card"), "card-channels", failed(channels));
    const smpp = channels.smpp || [];
    const modems = channels.modems || [];
    return card(t("channels_card"), "card-channels",
      h("dl", { class: "pairs" },
        h("dt", null, t("smpp_up")), h("dd", null, `${smpp.filter((x) => x.up).length} / ${smpp.length}`),
        h("dt", null, t("modems_up")), h("dd", null, `${modems.filter((x) => x.up).length} / ${modems.length}`)),
      h("a", { href: "#/channels" }, t("nav_channels"), " →"));
  }

  function syncSummary(sync) {
    if (failed(sync)) return card(t("sync_card"), "card-sync", failed(sync));
    return card(t("sync_card"), "card-sync",
      h("dl", { class: "pairs" },
        h("dt", null, t("sync_mode")), h("dd", null, String(sync.mode ?? "—")),
        h("dt", null, t("acc_status")), h("dd", null, sync.stale ? badge(t("sync_stale"), "bad") : badge(t("sync_fresh"), "good")),
        h("dt", null, t("last_ok")), h("dd", null, timeEl(sync.last_ok_at))));
  }

  // ---------------------------------------------------------------- templates
  async function renderTemplates(rest) {
    if (rest.length) return renderTemplateEditor(rest[0]);
    const body = h("div", null, loadingEl());
    page("templates", t("tpl_title"), body);
    const data = await api("GET", "templates");
    const rows = (data.templates || []).map((x) =>
      h("tr", { "data-test": "template-row-" + x.name },
        h("td", null, h("a", { href: "#/templates/" + encodeURIComponent(x.name), "data-test": "template-link-" + x.name }, x.name)),
        h("td", null, x.file || "—"),
        h("td", null, x.origin === "built-in" ? t("tpl_builtin") : x.origin || "—"),
        h("td", null, x.active_version ?? "—"),
        h("td", null, timeEl(x.updated_at), x.updated_by ? h("span", { class: "muted" }, " · ", x.updated_by) : null),
        h("td", null, `${x.max_segments_gsm7 ?? "—"} / ${x.max_segments_ucs2 ?? "—"}`),
        h("td", null, x.accents == null ? "—" : x.accents ? t("yes") : t("no"))));
    clear(body).append(table("templates-table",
      [t("tpl_name"), t("tpl_file"), t("tpl_origin"), t("tpl_active"), t("tpl_updated"), t("tpl_budget"), t("tpl_accents")], rows));
    return undefined;
  }

  function table(testId, heads, rows, empty) {
    if (!rows.length && empty) return h("p", { class: "muted", "data-test": testId + "-empty" }, empty);
    return h("div", { class: "table-wrap" },
      h("table", { "data-test": testId },
        h("thead", null, h("tr", null, heads.map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", null, rows)));
  }

  async function renderTemplateEditor(name) {
    const section = page("template", name, loadingEl());
    const detail = await api("GET", "templates/" + encodeURIComponent(name));
    const canEdit = hasRole("operator");
    const original = detail.source || "";
    const source = h("textarea", {
      "data-test": "template-source", spellcheck: "false", wrap: "off", rows: "12", readOnly: !canEdit,
      "aria-readonly": canEdit ? null : "true",
    });
    source.value = state.drafts[name] ?? original;
    const gutter = h("div", { class: "gutter", "aria-hidden": "true", "data-test": "template-gutter" });
    const estimate = h("p", { class: "hint", "data-test": "estimate", "aria-live": "polite" });
    const problemBox = h("div", { class: "error", role: "alert", "data-test": "preview-error", hidden: true });
    const phone = h("div", { class: "phone-screen", "data-test": "preview", "data-state": "idle", "aria-live": "polite", "aria-busy": "false" });
    let errorLine = null;

    const paintGutter = () => {
      const lines = source.value.split("\n").length;
      clear(gutter);
      for (let i = 1; i <= lines; i += 1) {
        gutter.append(h("div", { class: i === errorLine ? "err" : null, "data-test": i === errorLine ? "error-line" : null }, String(i)));
      }
      gutter.scrollTop = source.scrollTop;
    };
    source.addEventListener("scroll", () => {
      gutter.scrollTop = source.scrollTop;
    });

    const paintEstimate = () => {
      const c = smsCount(staticText(source.value));
      estimate.dataset.encoding = c.encoding;
      estimate.textContent = t("tpl_estimate", { chars: fmtNum(c.characters), encoding: c.encoding, segments: c.segments });
    };

    const gotoLine = (line) => {
      const lines = source.value.split("\n");
      const startPos = lines.slice(0, line - 1).reduce((a, l) => a + l.length + 1, 0);
      source.focus();
      source.setSelectionRange(startPos, startPos + (lines[line - 1] || "").length);
      const lh = parseFloat(getComputedStyle(source).lineHeight) || 20;
      source.scrollTop = Math.max(0, (line - 3) * lh);
    };

    let seq = 0;
    const preview = async () => {
      const mine = ++seq;
      phone.dataset.state = "loading";
      phone.setAttribute("aria-busy", "true");
      try {
        const res = await api("POST", "templates/" + encodeURIComponent(name) + "/preview", { source: source.value });
        if (mine !== seq) return;
        errorLine = null;
        problemBox.hidden = true;
        source.removeAttribute("aria-invalid");
        paintSamples(phone, res);
        phone.dataset.state = "ok";
      } catch (e) {
        if (mine !== seq || e instanceof Redirected) return;
        errorLine = e instanceof ApiError && e.body.line ? Number(e.body.line) : null;
        clear(problemBox);
        problemBox.hidden = false;
        problemBox.append(h("span", { "data-test": "preview-error-message" }, errorText(e)));
        if (errorLine) {
          source.setAttribute("aria-invalid", "true");
          problemBox.append(" ",
            h("strong", { "data-test": "preview-error-line", "data-line": errorLine }, t("tpl_line", { line: errorLine })), " ",
            h("code", { class: "line-text" }, (source.value.split("\n")[errorLine - 1] || "").trim()), " ",
            h("button", { type: "button", class: "link", onclick: () => gotoLine(errorLine) }, t("tpl_goto_line")));
        }
        phone.dataset.state = "error";
      } finally {
        if (mine === seq) phone.setAttribute("aria-busy", "false");
        paintGutter();
      }
    };
    const schedulePreview = debounce(preview, 350);
    state.cleanup.push(() => schedulePreview.cancel());

    const changed = () => {
      if (source.value === original) delete state.drafts[name];
      else state.drafts[name] = source.value;
      paintGutter();
      paintEstimate();
      phone.dataset.state = "pending";
      schedulePreview();
    };
    source.addEventListener("input", changed);
    source.setAttribute("aria-describedby", estimate.id = nextId("est"));
    problemBox.id = nextId("perr");
    source.setAttribute("aria-errormessage", problemBox.id);

    const chips = h("div", { class: "chips", "data-test": "variables" },
      (detail.variables || []).map((v) => {
        const vname = typeof v === "string" ? v : v.name;
        return h("button", {
          type: "button", class: "chip", "data-test": "variable-chip", "data-var": vname, disabled: !canEdit,
          title: typeof v === "object" && v.description ? v.description : null,
          onclick: () => {
            const ins = `{{ ${vname} }}`;
            source.setRangeText(ins, source.selectionStart, source.selectionEnd, "end");
            source.focus();
            changed();
          },
        }, vname);
      }));

    const note = h("input", { "data-test": "version-note", maxlength: "200" });
    const saveBtn = h("button", { type: "button", class: "primary", "data-test": "save-version" }, t("tpl_save_version"));
    const actionsError = h("p", { class: "error", role: "alert", "data-test": "template-action-error", hidden: true });
    saveBtn.addEventListener("click", () => attempt(async () => {
      actionsError.hidden = true;
      saveBtn.disabled = true;
      try {
        const v = await api("POST", `templates/${encodeURIComponent(name)}/versions`, { source: source.value, note: note.value });
        note.value = "";
        flash(t("tpl_saved", { id: v.id }), "ok");
        await refreshVersions();
      } finally {
        saveBtn.disabled = false;
      }
    }, actionsError));
    const rollbackBtn = h("button", { type: "button", "data-test": "rollback" }, t("tpl_rollback"));
    rollbackBtn.addEventListener("click", () => attempt(async () => {
      actionsError.hidden = true;
      const res = await api("POST", `templates/${encodeURIComponent(name)}/rollback`, {});
      delete state.drafts[name];
      flash(t("tpl_rolled_back", { version: res && res.active_version != null ? `${t("tpl_version").toLowerCase()} ${res.active_version}` : t("tpl_builtin") }), "ok");
      await renderTemplateEditor(name);
    }, actionsError));

    const activeInfo = h("p", { class: "meta", "data-test": "active-version" });
    const versionsBox = h("div", { "data-test": "versions" });
    const paintVersions = (d) => {
      clear(activeInfo).append(
        t("tpl_origin"), ": ", d.origin === "built-in" ? t("tpl_builtin") : d.origin || "—", " · ",
        t("tpl_active"), ": ", h("strong", { "data-test": "active-version-id" }, d.active_version ?? "—"),
        d.file ? h("span", { class: "muted" }, " · ", d.file) : null);
      const versions = d.versions || [];
      const rows = versions.map((v) => h("tr", { "data-test": "version-row-" + v.id, class: v.active ? "active" : null },
        h("td", null, String(v.id), v.active ? [" ", badge(t("tpl_active_badge"), "good", "active-badge")] : null),
        h("td", null, v.author || "—"),
        h("td", null, timeEl(v.created_at)),
        h("td", null, v.note || ""),
        h("td", { class: "actions" },
          v.source != null ? h("button", { type: "button", class: "link", "data-test": "load-" + v.id, onclick: () => {
            source.value = v.source;
            changed();
            flash(t("tpl_loaded", { id: v.id }), "ok");
          } }, t("tpl_load")) : null,
          canEdit && !v.active ? h("button", { type: "button", "data-test": "activate-" + v.id, onclick: (ev) => attempt(async () => {
            ev.target.disabled = true;
            actionsError.hidden = true;
            await api("POST", `templates/${encodeURIComponent(name)}/versions/${encodeURIComponent(v.id)}/activate`, {});
            delete state.drafts[name];
            flash(t("tpl_activated", { id: v.id }), "ok");
            await renderTemplateEditor(name);
          }, actionsError) }, t("tpl_activate")) : null)));
      clear(versionsBox).append(table("versions-table", [t("tpl_version"), t("tpl_author"), t("tpl_created"), t("tpl_note_col"), ""], rows, t("tpl_no_versions")));
    };
    const refreshVersions = async () => {
      const d = await api("GET", "templates/" + encodeURIComponent(name));
      paintVersions(d);
    };
    paintVersions(detail);

    const resetBtn = h("button", { type: "button", class: "link", "data-test": "reset-source", onclick: () => {
      source.value = original;
      changed();
    } }, t("tpl_reset"));

    const editor = h("div", { class: "editor" },
      h("label", { for: (source.id = nextId("src")) }, t("tpl_source")),
      h("div", { class: "code" }, gutter, source),
      estimate,
      problemBox,
      h("h2", { class: "small" }, t("tpl_variables")),
      chips,
      canEdit
        ? h("div", { class: "save-row" }, field(t("tpl_note"), note), saveBtn, rollbackBtn, resetBtn)
        : h("p", { class: "notice", "data-test": "template-readonly" }, t("tpl_readonly")),
      actionsError);
    const mock = h("div", { class: "preview-col" }, h("h2", { class: "small" }, t("tpl_preview")),
      h("div", { class: "phone", "aria-label": t("tpl_preview") }, h("div", { class: "phone-top", "aria-hidden": "true" }), phone));
    clear(section).append(h("h1", { id: "page-title" }, h("a", { href: "#/templates", class: "crumb" }, t("tpl_title")), " / ", name),
      activeInfo, h("div", { class: "split" }, editor, mock), h("h2", null, t("tpl_versions")), versionsBox);
    document.title = name + " · motcua-sms";
    paintGutter();
    paintEstimate();
    await preview();
  }

  function paintSamples(phone, res) {
    clear(phone);
    if (res.problem) phone.append(h("p", { class: "warn", "data-test": "preview-problem" }, t("tpl_problem"), ": ", typeof res.problem === "string" ? res.problem : res.problem.message || JSON.stringify(res.problem)));
    for (const x of res.samples || []) {
      const fits = x.fits !== false;
      phone.append(h("div", { class: "sample", "data-test": "preview-sample", "data-sample": x.sample ?? "" },
        h("p", { class: "sample-label" }, sampleLabel(x)),
        h("div", { class: "bubble in" + (fits ? "" : " over"), "data-test": "sample-text" }, x.text ?? ""),
        h("p", { class: "sample-meta" },
          badge(x.encoding, x.encoding === "GSM-7" ? "gsm" : "ucs", "sample-encoding"), " ",
          h("span", { "data-test": "sample-characters" }, t("tpl_chars", { n: fmtNum(x.characters) })), " · ",
          h("span", { "data-test": "sample-segments", "data-segments": x.segments, "data-budget": x.budget }, t("tpl_segments", { n: x.segments, budget: x.budget ?? "—" })), " ",
          badge(fits ? t("tpl_fits") : t("tpl_over"), fits ? "good" : "bad", "sample-fits"))));
    }
  }

  // ---------------------------------------------------------------- simulator
  function renderSimulator() {
    const from = h("input", { type: "tel", "data-test": "sim-from", autocomplete: "off", required: true, value: localStorage.getItem("motcua.sim.from") || "0912345678" });
    const text = h("textarea", { "data-test": "sim-text", rows: "2", required: true });
    const count = h("span", { class: "hint", "data-test": "sim-count" });
    const send = h("button", { type: "submit", class: "primary", "data-test": "sim-send" }, t("sim_send"));
    const thread = h("div", { class: "phone-screen thread", "data-test": "sim-thread", "aria-live": "polite" });
    const error = h("p", { class: "error", role: "alert", "data-test": "sim-error", hidden: true });
    const recount = () => {
      const c = smsCount(text.value);
      count.textContent = `${c.encoding} · ${t("tpl_chars", { n: c.characters })} · ${c.segments} SMS`;
    };
    text.addEventListener("input", recount);
    text.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    const form = h("form", { class: "sim-form", "data-test": "sim-form" }, field(t("sim_from"), from), field(t("sim_text"), text), h("div", { class: "row" }, count, send), error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      if (!text.value.trim()) return;
      send.disabled = true;
      const sent = text.value;
      localStorage.setItem("motcua.sim.from", from.value.trim());
      try {
        const r = await api("POST", "simulate", { from: from.value.trim(), text: sent });
        thread.append(h("div", { class: "bubble out", "data-test": "sim-sent" }, sent));
        const has = r.text != null && r.text !== "";
        thread.append(h("div", { class: "bubble in" + (has ? "" : " silent"), "data-test": "sim-reply", "data-kind": r.kind || "" }, has ? r.text : t("sim_no_reply")));
        thread.append(h("p", { class: "sample-meta", "data-test": "sim-meta" },
          r.encoding ? [badge(r.encoding, r.encoding === "GSM-7" ? "gsm" : "ucs", "sim-encoding"), " "] : null,
          r.characters != null ? [t("tpl_chars", { n: fmtNum(r.characters) }), " · "] : null,
          r.segments != null ? [h("span", { "data-test": "sim-segments" }, `${r.segments} SMS`), " · "] : null,
          t("sim_kind"), ": ", r.kind ? outcomeLabel(r.kind) : "—",
          r.code ? [" · ", t("sim_code"), ": ", r.code] : null,
          r.code ? [" · ", r.sender_is_owner ? t("sim_owner") : t("sim_not_owner")] : null));
        thread.scrollTop = thread.scrollHeight;
        text.value = "";
        recount();
      } catch (e) {
        if (!(e instanceof Redirected)) showError(error, errorText(e));
      } finally {
        send.disabled = false;
        text.focus();
      }
    });
    recount();
    page("simulator", t("sim_title"), h("p", { class: "hint" }, t("sim_hint")),
      h("div", { class: "phone sim" }, h("div", { class: "phone-top", "aria-hidden": "true" }), thread, form));
    text.focus();
  }

  // ---------------------------------------------------------------- message log
  function renderMessages() {
    const code = h("input", { name: "code", "data-test": "filter-code", autocomplete: "off" });
    const sender = h("input", { name: "sender", type: "tel", "data-test": "filter-sender", autocomplete: "off" });
    const channel = h("input", { name: "channel", "data-test": "filter-channel", list: "channel-hints", autocomplete: "off" });
    const outcome = h("select", { name: "outcome", "data-test": "filter-outcome" },
      h("option", { value: "" }, "—"), OUTCOME_ORDER.map((o) => h("option", { value: o }, outcomeLabel(o))));
    const since = h("input", { type: "datetime-local", name: "since", "data-test": "filter-since" });
    const until = h("input", { type: "datetime-local", name: "until", "data-test": "filter-until" });
    const hints = h("datalist", { id: "channel-hints" }, CHANNEL_HINTS.map((c) => h("option", { value: c })));
    const form = h("form", { class: "filters", "data-test": "msg-filters" },
      field(t("msg_code"), code), field(t("msg_sender"), sender), field(t("msg_channel"), channel), hints,
      field(t("msg_outcome"), outcome), field(t("msg_since") + " (GMT+7)", since), field(t("msg_until") + " (GMT+7)", until),
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary", "data-test": "msg-search" }, t("msg_search")),
        h("button", { type: "reset", class: "link" }, t("msg_clear"))));
    const tbody = h("tbody");
    const tableEl = h("div", { class: "table-wrap" }, h("table", { "data-test": "msg-table" },
      h("thead", null, h("tr", null, [t("msg_received"), t("msg_channel"), t("msg_sender"), t("msg_code"), t("msg_outcome"), t("msg_state"), t("msg_latency"), t("msg_text")].map((x) => h("th", { scope: "col" }, x)))),
      tbody));
    const more = h("button", { type: "button", "data-test": "msg-more", hidden: true }, t("msg_more"));
    const status = h("p", { class: "muted", "data-test": "msg-status", "aria-live": "polite" });
    let before = null;

    const query = () => {
      const q = new URLSearchParams();
      if (code.value.trim()) q.set("code", code.value.trim());
      if (sender.value.trim()) q.set("sender", sender.value.trim());
      if (channel.value.trim()) q.set("channel", channel.value.trim());
      if (outcome.value) q.set("outcome", outcome.value);
      const a = vnLocalToMs(since.value);
      const b = vnLocalToMs(until.value);
      if (a != null) q.set("since", String(a));
      if (b != null) q.set("until", String(b));
      q.set("limit", "50");
      return q;
    };
    const load = async (reset) => {
      const q = query();
      if (!reset && before != null) q.set("before", String(before));
      status.textContent = t("loading");
      more.disabled = true;
      try {
        const res = await api("GET", "messages?" + q.toString());
        if (reset) clear(tbody);
        for (const m of res.messages || []) tbody.append(messageRow(m));
        before = res.next_before ?? null;
        more.hidden = before == null;
        status.textContent = !tbody.children.length ? t("msg_empty") : before == null ? t("msg_end") : "";
      } catch (e) {
        if (!(e instanceof Redirected)) status.textContent = errorText(e);
      } finally {
        more.disabled = false;
      }
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      before = null;
      load(true);
    });
    form.addEventListener("reset", () => setTimeout(() => form.requestSubmit(), 0));
    more.addEventListener("click", () => load(false));
    page("messages", t("msg_title"), h("details", { class: "card filters-box", open: true }, h("summary", null, t("msg_search")), form), tableEl, status, more);
    return load(true);
  }

  function messageRow(m) {
    const lat = m.latency_ms != null ? fmtMs(m.latency_ms) : "—";
    const textCell = m.purged
      ? h("span", { class: "muted" }, t("msg_purged"))
      : h("details", null, h("summary", null, truncate(m.text || "", 40)),
        m.outcome === "undecodable" ? h("p", { class: "muted" }, t("msg_raw_pdu"), ":") : null,
        h("p", { class: "pre" }, m.text || ""),
        m.reply_text ? [h("p", { class: "muted" }, t("msg_reply"), " (", timeEl(m.sent_at), "):"), h("p", { class: "pre" }, m.reply_text)] : null);
    return h("tr", { "data-test": "msg-row", "data-id": m.id },
      h("td", null, timeEl(m.received_at)),
      h("td", null, m.channel || "—"),
      h("td", { class: "mono" }, m.sender || "—"),
      h("td", { class: "mono" }, m.code || "—"),
      h("td", null, m.outcome ? outcomeLabel(m.outcome) : "—"),
      h("td", null, m.state ? stateLabel(m.state) : "—"),
      h("td", { class: "num" }, lat),
      h("td", null, textCell));
  }

  function truncate(x, n) {
    const chars = Array.from(x);
    return chars.length > n ? chars.slice(0, n).join("") + "…" : x;
  }

  // ---------------------------------------------------------------- lists
  async function renderLists() {
    const canEdit = hasRole("operator");
    const body = h("div", null, loadingEl());
    page("lists", t("lists_title"), h("div", { class: "toolbar" }, h("button", { type: "button", "data-test": "refresh", onclick: () => route() }, t("refresh"))), body);
    const data = await api("GET", "lists");
    const reload = () => renderLists();
    const removeBtn = (label, path, done, number, testId) => canEdit
      ? h("button", { type: "button", class: "link danger", "data-test": testId, onclick: () => attempt(async () => {
        await api("DELETE", path + encodeURIComponent(number));
        flash(t(done, { number }), "ok");
        await reload();
      }) }, label)
      : null;

    const blockedRows = (data.blocked || []).map((b) => h("tr", { "data-test": "blocked-row", "data-number": b.number },
      h("td", { class: "mono" }, b.number), h("td", null, b.reason || ""), h("td", null, b.until ? timeEl(b.until) : t("permanent")),
      h("td", null, timeEl(b.created_at)), h("td", null, removeBtn(t("unblock"), "lists/blocked/", "unblocked_done", b.number, "unblock"))));
    const allowedRows = (data.allowed || []).map((a) => h("tr", { "data-test": "allowed-row", "data-number": a.number },
      h("td", { class: "mono" }, a.number), h("td", null, timeEl(a.created_at)),
      h("td", null, removeBtn(t("remove"), "lists/allowed/", "unallowed_done", a.number, "unallow"))));
    const limitedRows = (data.rate_limited || []).map((r) => h("tr", { "data-test": "ratelimited-row" },
      h("td", { class: "mono" }, r.number), h("td", null, timeEl(r.until))));

    let blockForm = null;
    let allowForm = null;
    if (canEdit) {
      const num = h("input", { type: "tel", required: true, "data-test": "block-number", autocomplete: "off" });
      const reason = h("input", { "data-test": "block-reason", maxlength: "200" });
      const minutes = h("input", { type: "number", min: "1", step: "1", "data-test": "block-minutes" });
      const err = h("p", { class: "error", role: "alert", hidden: true });
      blockForm = h("form", { class: "inline-form", "data-test": "block-form" }, field(t("number"), num), field(t("reason"), reason), field(t("minutes"), minutes),
        h("button", { type: "submit", class: "primary", "data-test": "block-submit" }, t("block")), err);
      blockForm.addEventListener("submit", (ev) => {
        ev.preventDefault();
        attempt(async () => {
          const payload = { number: num.value.trim(), reason: reason.value.trim() };
          if (minutes.value) payload.minutes = Number(minutes.value);
          await api("POST", "lists/blocked", payload);
          flash(t("blocked_done", { number: payload.number }), "ok");
          await reload();
        }, err);
      });
      const anum = h("input", { type: "tel", required: true, "data-test": "allow-number", autocomplete: "off" });
      const aerr = h("p", { class: "error", role: "alert", hidden: true });
      allowForm = h("form", { class: "inline-form", "data-test": "allow-form" }, field(t("number"), anum),
        h("button", { type: "submit", class: "primary", "data-test": "allow-submit" }, t("allow")), aerr);
      allowForm.addEventListener("submit", (ev) => {
        ev.preventDefault();
        attempt(async () => {
          await api("POST", "lists/allowed", { number: anum.value.trim() });
          flash(t("allowed_done", { number: anum.value.trim() }), "ok");
          await reload();
        }, aerr);
      });
    }
    clear(body).append(
      card(t("blocked"), "blocked", table("blocked-table", [t("number"), t("reason"), t("until"), t("created"), ""], blockedRows, t("none")), blockForm),
      card(t("allowed"), "allowed", table("allowed-table", [t("number"), t("created"), ""], allowedRows, t("none")), allowForm),
      card(t("rate_limited_now"), "rate-limited", table("ratelimited-table", [t("number"), t("until")], limitedRows, t("none"))));
  }

  // ---------------------------------------------------------------- channels
  const TIME_FIELDS = /(_at|_until|^until|^since)$/;

  function genericRows(obj, skip) {
    const rows = [];
    for (const [k, v] of Object.entries(obj || {})) {
      if (skip && skip.includes(k)) continue;
      let shown;
      if (v == null) shown = "—";
      else if (typeof v === "boolean") shown = v ? t("yes") : t("no");
      else if (typeof v === "number" && TIME_FIELDS.test(k)) shown = timeEl(v);
      else if (typeof v === "string" && TIME_FIELDS.test(k) && toMs(v) != null) shown = timeEl(v);
      else if (typeof v === "number") shown = fmtNum(v);
      else if (typeof v === "object") shown = h("code", { class: "pre" }, JSON.stringify(v, null, 1));
      else shown = String(v);
      rows.push(h("dt", null, k.replace(/_/g, " ")), h("dd", { "data-field": k }, shown));
    }
    return h("dl", { class: "pairs" }, rows);
  }

  function upBadge(up) {
    return up == null ? null : up ? badge(t("up"), "good", "up") : badge(t("down"), "bad", "down");
  }

  async function renderChannels() {
    const body = h("div", null, loadingEl());
    page("channels", t("ch_title"), h("div", { class: "toolbar" },
      h("button", { type: "button", "data-test": "refresh", onclick: () => route() }, t("refresh")),
      autoRefreshSwitch()), body);
    const [channels, sync] = await Promise.all([api("GET", "channels").catch(keep), api("GET", "sync").catch(keep)]);
    clear(body);
    const smppBox = card(t("ch_smpp"), "channels-smpp");
    const modemBox = card(t("ch_modems"), "channels-modems");
    if (failed(channels)) smppBox.append(failed(channels));
    else {
      const smpp = channels.smpp || [];
      const modems = channels.modems || [];
      smppBox.append(smpp.length ? h("div", { class: "cards" }, smpp.map((c) => h("article", { class: "mini", "data-test": "smpp-link" },
        h("h3", null, String(c.channel ?? "?"), " ", c.role ? h("span", { class: "muted" }, c.role) : null, " ", upBadge(c.up)),
        c.window_size ? h("meter", { min: "0", max: String(c.window_size), value: String(c.window_in_use || 0), title: `${c.window_in_use || 0}/${c.window_size}` }) : null,
        genericRows(c, ["channel", "role", "up"])))) : h("p", { class: "muted" }, t("none")));
      modemBox.append(modems.length ? h("div", { class: "cards" }, modems.map((m) => h("article", { class: "mini", "data-test": "modem" },
        h("h3", null, String(m.name ?? "?"), " ", upBadge(m.up)), genericRows(m, ["name", "up"])))) : h("p", { class: "muted" }, t("none")));
      const nodes = channels.nodes || [];
      if (nodes.length) {
        const nodeState = (n) => n.state === "taken" ? badge(t("node_taken", { node: n.taken_by || "?" }), "warn", "node-taken")
          : n.state === "stopped" ? badge(t("node_stopped"), "", "node-stopped")
          : n.alive ? badge(t("node_live"), "good", "node-live") : badge(t("node_silent"), "bad", "node-silent");
        body.append(card(t("ch_nodes"), "channels-nodes", h("div", { class: "cards" }, nodes.map((n) => h("article", { class: "mini", "data-test": "node" },
          h("h3", null, String(n.name), " ", n.this_node ? h("span", { class: "muted" }, "(" + t("node_this") + ")") : null, " ", nodeState(n)),
          h("p", null, t("node_heartbeat"), ": ", fmtTime(n.heartbeat_at)),
          h("p", null, t("node_links"), ": ", String((n.smpp || []).filter((l) => l.open).length), " / ", String((n.smpp || []).length)))))));
      }
      for (const [k, v] of Object.entries(channels)) {
        if (k === "smpp" || k === "modems" || k === "nodes") continue;
        body.append(card(k, "channels-" + k, Array.isArray(v) ? v.map((x) => h("article", { class: "mini" }, genericRows(x))) : genericRows(typeof v === "object" ? v : { [k]: v })));
      }
    }
    const syncBox = card(t("ch_sync"), "sync-card");
    if (failed(sync)) syncBox.append(failed(sync));
    else {
      syncBox.append(h("p", null, sync.stale ? badge(t("sync_stale"), "bad", "sync-stale") : badge(t("sync_fresh"), "good", "sync-fresh")),
        genericRows(sync, ["sources", "stale"]));
      const sources = sync.sources || [];
      if (sources.length) {
        syncBox.append(h("h3", null, t("ch_sources")), h("div", { class: "cards" }, sources.map((src) => h("article", { class: "mini", "data-test": "sync-source" },
          typeof src === "object" ? [src.name ? h("h3", null, String(src.name)) : null, genericRows(src, ["name"])] : String(src)))));
      }
    }
    body.prepend(smppBox, modemBox, syncBox);
  }

  // ---------------------------------------------------------------- accounts
  async function renderAccounts() {
    const body = h("div", null, loadingEl());
    page("accounts", t("acc_title"), body);
    const [data, audit] = await Promise.all([api("GET", "accounts"), api("GET", "audit?limit=100").catch(keep)]);
    const accounts = Array.isArray(data) ? data : data.accounts || [];
    const me = state.session.username;
    const reload = () => renderAccounts();
    const rowError = h("p", { class: "error", role: "alert", "data-test": "account-error", hidden: true });

    const patch = (username, body2, doneKey) => attempt(async () => {
      rowError.hidden = true;
      await api("PATCH", "accounts/" + encodeURIComponent(username), body2);
      flash(t(doneKey || "acc_updated", { username }), "ok");
      await reload();
    }, rowError);

    const rows = accounts.map((a) => {
      const role = h("select", { "data-test": "account-role", "aria-label": `${t("acc_role")} ${a.username}` },
        ["viewer", "operator", "administrator"].map((r) => h("option", { value: r, selected: a.role === r }, roleLabel(r))));
      role.addEventListener("change", () => patch(a.username, { role: role.value }));
      const locked = a.locked_until && toMs(a.locked_until) > Date.now();
      const status = [
        a.disabled ? badge(t("acc_disabled"), "bad") : badge(t("acc_active"), "good"),
        locked ? [" ", badge(t("acc_locked", { time: fmtTime(a.locked_until) }), "warn")] : null,
        a.must_change_password ? [" ", badge(t("acc_must_change"), "warn")] : null,
      ];
      const pw = h("input", { type: "password", autocomplete: "new-password", "data-test": "reset-password", "aria-label": `${t("acc_reset")} ${a.username}`, minlength: "12" });
      const resetForm = h("form", { class: "reset", hidden: true }, pw, h("button", { type: "submit" }, t("save")));
      resetForm.addEventListener("submit", (ev) => {
        ev.preventDefault();
        patch(a.username, { password: pw.value }, "acc_reset_done");
      });
      return h("tr", { "data-test": "account-row", "data-username": a.username },
        h("td", null, h("strong", null, a.username), a.username === me ? h("span", { class: "muted" }, " (", t("you"), ")") : null),
        h("td", null, role),
        h("td", null, status),
        h("td", { class: "actions" },
          h("button", { type: "button", "data-test": a.disabled ? "account-enable" : "account-disable", onclick: () => patch(a.username, { disabled: !a.disabled }) },
            a.disabled ? t("acc_enable") : t("acc_disable")),
          locked ? h("button", { type: "button", "data-test": "account-unlock", onclick: () => patch(a.username, { unlock: true }) }, t("acc_unlock")) : null,
          h("button", { type: "button", class: "link", "data-test": "account-reset", "aria-expanded": "false", onclick: (ev) => {
            resetForm.hidden = !resetForm.hidden;
            ev.target.setAttribute("aria-expanded", String(!resetForm.hidden));
            if (!resetForm.hidden) pw.focus();
          } }, t("acc_reset")),
          resetForm));
    });

    const nu = h("input", { required: true, "data-test": "new-username", autocomplete: "off", autocapitalize: "none", pattern: "[a-z0-9._\\-]{3,32}" });
    const nr = h("select", { "data-test": "new-role" }, ["viewer", "operator", "administrator"].map((r) => h("option", { value: r }, roleLabel(r))));
    const np = h("input", { type: "password", required: true, minlength: "12", autocomplete: "new-password", "data-test": "new-password" });
    const cerr = h("p", { class: "error", role: "alert", hidden: true, "data-test": "create-error" });
    const create = h("form", { class: "grid-form", "data-test": "account-create-form" },
      field(t("username"), nu), field(t("acc_role"), nr), field(t("acc_initial_password"), np, t("password_hint")),
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary", "data-test": "account-create" }, t("acc_create"))), cerr);
    create.addEventListener("submit", (ev) => {
      ev.preventDefault();
      attempt(async () => {
        await api("POST", "accounts", { username: nu.value.trim(), role: nr.value, password: np.value });
        flash(t("acc_created", { username: nu.value.trim() }), "ok");
        await reload();
      }, cerr);
    });

    const auditBox = card(t("audit_title"), "audit");
    if (failed(audit)) auditBox.append(failed(audit));
    else {
      const entries = (audit.entries || []).map((e) => h("tr", { "data-test": "audit-row" },
        h("td", null, timeEl(e.at)), h("td", null, e.actor || "—"), h("td", null, e.action || ""), h("td", null, e.target || ""),
        h("td", null, typeof e.detail === "object" && e.detail ? JSON.stringify(e.detail) : e.detail || "")));
      auditBox.append(table("audit-table", [t("audit_at"), t("audit_actor"), t("audit_action"), t("audit_target"), t("audit_detail")], entries, t("none")));
    }
    clear(body).append(
      card(t("acc_title"), "accounts", table("accounts-table", [t("username"), t("acc_role"), t("acc_status"), t("acc_actions")], rows), rowError),
      card(t("acc_create"), "account-create-card", create),
      auditBox);
  }

  // ---------------------------------------------------------------- start
  function start() {
    const saved = localStorage.getItem("motcua.lang");
    state.lang = saved === "en" || saved === "vi" ? saved : "vi";
    state.autoRefresh = localStorage.getItem("motcua.autoRefresh") !== "off";
    applyStaticStrings();
    document.getElementById("lang").addEventListener("change", (ev) => {
      state.lang = ev.target.value === "en" ? "en" : "vi";
      localStorage.setItem("motcua.lang", state.lang);
      rerender();
    });
    document.getElementById("logout").addEventListener("click", logout);
    const toggle = document.querySelector(".nav-toggle");
    toggle.addEventListener("click", () => {
      const top = document.querySelector(".top");
      const open = !top.classList.contains("open");
      top.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", String(open));
    });
    document.getElementById("nav").addEventListener("click", (ev) => {
      if (ev.target.closest("a")) closeNav();
    });
    window.addEventListener("hashchange", route);
    if (!location.hash) history.replaceState(null, "", "#/dashboard");
    route();
  }

  start();
})();
