//! USSD screens from admin-editable templates (`templates/ussd/*.j2`,
//! minijinja, the same variables as the SMS templates plus the menu's).
//! Every template is compiled and rendered against sample data when
//! loaded, and must fit one USSD screen: 182 characters in GSM-7 (accents
//! folded away, the default), 80 in UCS-2 (accents kept). A template that
//! does not is refused at start-up with its name and the length it reached.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::reply::{
    add_template, render_bounded, shorten, template_environment, ReplyContext, TemplateError,
};
use crate::sms_text::{self, Encoding};

/// Characters on one USSD screen in GSM-7 (160 octets of packed septets).
pub const SCREEN_GSM7: usize = 182;
/// Characters on one USSD screen in UCS-2 (160 octets).
pub const SCREEN_UCS2: usize = 80;

/// The screens of the USSD dialogue, one template each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screen {
    /// The menu (the bare service code). Open.
    Menu,
    /// "Enter the code" (after menu choice 1, or again after a bad input). Open.
    AskCode,
    /// Several dossiers share the digits: pick one. Open.
    Choose,
    /// The dossier's status. Closes.
    Found,
    /// No such dossier. Closes.
    NotFound,
    /// How to use the service. Closes.
    Help,
    /// The hotline. Closes.
    Hotline,
    /// The lookup took longer than USSD allows. Closes.
    Slow,
    /// Over the rate limit: says when to try again. Closes.
    TooMany,
    /// The number is blocked. Closes.
    Blocked,
    /// The read model failed. Closes.
    Unavailable,
    /// The gateway released a dialogue left unanswered. Closes.
    Ended,
}

impl Screen {
    /// Every screen, for loading and checking.
    pub const ALL: [Screen; 12] = [
        Screen::Menu,
        Screen::AskCode,
        Screen::Choose,
        Screen::Found,
        Screen::NotFound,
        Screen::Help,
        Screen::Hotline,
        Screen::Slow,
        Screen::TooMany,
        Screen::Blocked,
        Screen::Unavailable,
        Screen::Ended,
    ];

    /// The template file, under `templates/ussd/`.
    pub fn template_name(self) -> &'static str {
        match self {
            Screen::Menu => "menu.j2",
            Screen::AskCode => "ask_code.j2",
            Screen::Choose => "choose.j2",
            Screen::Found => "found.j2",
            Screen::NotFound => "not_found.j2",
            Screen::Help => "help.j2",
            Screen::Hotline => "hotline.j2",
            Screen::Slow => "slow.j2",
            Screen::TooMany => "too_many.j2",
            Screen::Blocked => "blocked.j2",
            Screen::Unavailable => "unavailable.j2",
            Screen::Ended => "ended.j2",
        }
    }

    /// Short name for logs, metrics and the journal's outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Screen::Menu => "menu",
            Screen::AskCode => "ask_code",
            Screen::Choose => "choose",
            Screen::Found => "found",
            Screen::NotFound => "not_found",
            Screen::Help => "help",
            Screen::Hotline => "hotline",
            Screen::Slow => "slow",
            Screen::TooMany => "rate_limited",
            Screen::Blocked => "blocked",
            Screen::Unavailable => "unavailable",
            Screen::Ended => "ended",
        }
    }

    /// True when the dialogue stays open for the citizen's input.
    pub fn expects_input(self) -> bool {
        matches!(self, Screen::Menu | Screen::AskCode | Screen::Choose)
    }

    fn embedded_source(self) -> &'static str {
        match self {
            Screen::Menu => include_str!("../../templates/ussd/menu.j2"),
            Screen::AskCode => include_str!("../../templates/ussd/ask_code.j2"),
            Screen::Choose => include_str!("../../templates/ussd/choose.j2"),
            Screen::Found => include_str!("../../templates/ussd/found.j2"),
            Screen::NotFound => include_str!("../../templates/ussd/not_found.j2"),
            Screen::Help => include_str!("../../templates/ussd/help.j2"),
            Screen::Hotline => include_str!("../../templates/ussd/hotline.j2"),
            Screen::Slow => include_str!("../../templates/ussd/slow.j2"),
            Screen::TooMany => include_str!("../../templates/ussd/too_many.j2"),
            Screen::Blocked => include_str!("../../templates/ussd/blocked.j2"),
            Screen::Unavailable => include_str!("../../templates/ussd/unavailable.j2"),
            Screen::Ended => include_str!("../../templates/ussd/ended.j2"),
        }
    }
}

/// Everything a USSD template may use: the SMS variables, and the menu's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScreenContext {
    /// The SMS templates' variables (code, status, …, service_number, hotline, accents).
    #[serde(flatten)]
    pub reply: ReplyContext,
    /// The codes to pick from (choose).
    pub choices: Vec<String>,
    /// True after an invalid choice (menu, choose).
    pub retry: bool,
    /// Why the last code typed was refused (ask_code): "empty", "short",
    /// "long", "date", "zero" or "not_code".
    pub problem: Option<&'static str>,
    /// The service code as dialled, `*8058#`.
    pub service_code: String,
    /// The service code without its `#`, to build a direct dial: `*8058`.
    pub service_prefix: String,
}

/// A screen ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedScreen {
    /// Which template.
    pub screen: Screen,
    /// The text, within one screen.
    pub text: String,
    /// GSM-7 or UCS-2.
    pub encoding: Encoding,
}

/// Renders the USSD screens from a checked set of templates.
#[derive(Clone)]
pub struct ScreenRenderer {
    env: Environment<'static>,
    accents: bool,
    sources: Vec<(Screen, String)>,
}

impl std::fmt::Debug for ScreenRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenRenderer")
            .field("accents", &self.accents)
            .field("sources", &self.sources)
            .finish()
    }
}

/// How long `text` is on a screen, and the screen's limit for its encoding.
pub fn screen_length(text: &str) -> (usize, usize, Encoding) {
    let info = sms_text::segment_info(text);
    let limit = match info.encoding {
        Encoding::Gsm7 => SCREEN_GSM7,
        Encoding::Ucs2 => SCREEN_UCS2,
    };
    (info.units, limit, info.encoding)
}

impl ScreenRenderer {
    /// Loads the screens: `dir/<screen>.j2` overrides the built-in default;
    /// `accents` keeps Vietnamese diacritics (UCS-2, 80 characters a
    /// screen) instead of folding them away (GSM-7, 182). Every template is
    /// compiled, rendered against sample data and measured.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] naming the template: unreadable, syntax error or
    /// unknown variable (with the line), or longer than a screen.
    pub fn load(dir: Option<&Path>, accents: bool) -> Result<Self, TemplateError> {
        let mut env = template_environment();
        let mut sources = Vec::new();
        for screen in Screen::ALL {
            let origin = add_template(
                &mut env,
                dir,
                screen.template_name(),
                screen.embedded_source(),
            )?;
            sources.push((screen, origin));
        }
        let renderer = ScreenRenderer {
            env,
            accents,
            sources,
        };
        renderer.check()?;
        Ok(renderer)
    }

    /// Where each screen's template came from.
    pub fn sources(&self) -> &[(Screen, String)] {
        &self.sources
    }

    /// True when screens keep their accents (UCS-2).
    pub fn accents(&self) -> bool {
        self.accents
    }

    /// Renders every screen against sample contexts: a syntax error, an
    /// unknown variable or a screen too long even unaccented surfaces now.
    fn check(&self) -> Result<(), TemplateError> {
        for screen in Screen::ALL {
            for ctx in sample_contexts(self.accents) {
                let text = self.fitted(screen, &ctx).map_err(|e| invalid(screen, &e))?;
                let (length, limit, encoding) = screen_length(&text);
                if length > limit {
                    return Err(TemplateError::Invalid {
                        name: screen.template_name(),
                        line: None,
                        detail: format!(
                            "renders to {length} characters ({}) with the sample dossier, over the USSD \
                             screen limit of {limit}: shorten the text",
                            encoding.name(),
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn render_raw(
        &self,
        screen: Screen,
        ctx: &ScreenContext,
        accents: bool,
    ) -> Result<String, minijinja::Error> {
        let (text, _) = render_bounded(&self.env.get_template(screen.template_name())?, ctx)?;
        let text = text.trim();
        Ok(if accents {
            text.to_owned()
        } else {
            sms_text::to_gsm7_lossy(text)
        })
    }

    /// The text fitted to one screen if it can be: with accents when set
    /// and they fit (80 characters), else unaccented (182); the procedure
    /// name shortened, then left out, then the owner's name left out.
    fn fitted(&self, screen: Screen, ctx: &ScreenContext) -> Result<String, minijinja::Error> {
        let text = self.fit(screen, ctx, self.accents)?;
        if self.accents && !fits(&text) {
            let mut unaccented = ctx.clone();
            unaccented.reply.accents = false;
            return self.fit(screen, &unaccented, false);
        }
        Ok(text)
    }

    fn fit(
        &self,
        screen: Screen,
        ctx: &ScreenContext,
        accents: bool,
    ) -> Result<String, minijinja::Error> {
        let mut text = self.render_raw(screen, ctx, accents)?;
        if fits(&text) {
            return Ok(text);
        }
        let mut ctx = ctx.clone();
        if let Some(full) = ctx.reply.procedure.clone() {
            let mut limit = full.chars().count();
            while !fits(&text) && limit > 12 {
                limit = limit.saturating_sub(6).max(12);
                ctx.reply.procedure = Some(shorten(&full, limit));
                text = self.render_raw(screen, &ctx, accents)?;
            }
            if !fits(&text) {
                ctx.reply.procedure = None;
                text = self.render_raw(screen, &ctx, accents)?;
            }
        }
        if !fits(&text) && ctx.reply.owner_name.is_some() {
            ctx.reply.owner_name = None;
            text = self.render_raw(screen, &ctx, accents)?;
        }
        Ok(text)
    }

    /// Renders `screen` within one screen (see `fitted`); a text that still
    /// does not fit (an admin's template with a long value) is cut with an
    /// ellipsis.
    ///
    /// # Errors
    ///
    /// minijinja's, should a checked template still fail (the caller falls back).
    pub fn render(
        &self,
        screen: Screen,
        ctx: &ScreenContext,
    ) -> Result<RenderedScreen, minijinja::Error> {
        let mut text = self.fitted(screen, ctx)?;
        if !fits(&text) {
            let text_chars: Vec<char> = sms_text::to_gsm7_lossy(&text).chars().collect();
            let mut keep = text_chars.len().min(SCREEN_GSM7);
            loop {
                let cut: String = text_chars[..keep].iter().collect::<String>() + "...";
                if fits(&cut) || keep == 0 {
                    text = cut;
                    break;
                }
                keep -= 1;
            }
        }
        let encoding = sms_text::segment_info(&text).encoding;
        Ok(RenderedScreen {
            screen,
            text,
            encoding,
        })
    }
}

/// Whether `text` fits one screen in its encoding.
fn fits(text: &str) -> bool {
    let (length, limit, _) = screen_length(text);
    length <= limit
}

fn invalid(screen: Screen, error: &minijinja::Error) -> TemplateError {
    TemplateError::invalid(screen.template_name(), error)
}

/// Sample contexts with the optional fields set and unset, long values
/// included, so a template's worst case is measured at load.
pub fn sample_contexts(accents: bool) -> Vec<ScreenContext> {
    let base = ScreenContext {
        reply: ReplyContext {
            service_number: "8058".into(),
            hotline: Some("0273 3 873 999".into()),
            accents,
            ..ReplyContext::default()
        },
        service_code: "*8058#".into(),
        service_prefix: "*8058".into(),
        ..ScreenContext::default()
    };
    let full = ScreenContext {
        reply: ReplyContext {
            code: Some("000.00.12.H58-240315-0007".into()),
            typed_code: Some("0000012582403150007".into()),
            procedure: Some("Cấp giấy phép xây dựng nhà ở riêng lẻ".into()),
            agency: Some("UBND huyện Cái Bè".into()),
            status: Some("Yêu cầu thực hiện nghĩa vụ tài chính".into()),
            status_code: Some(6),
            appointment: Some("29/03/2024".into()),
            received: Some("15/03/2024".into()),
            finished: Some("28/03/2024".into()),
            timeliness: Some("còn hạn".into()),
            owner_name: Some("Nguyễn Thị Ngọc Phương Thảo".into()),
            retry_at: Some("14:35".into()),
            data_as_of: Some("14:05 27/11".into()),
            ..base.reply.clone()
        },
        choices: vec![
            "000.00.12.G58-240315-0007".into(),
            "000.00.12.H58-240315-0007".into(),
            "000.00.12.K58-240315-0007".into(),
        ],
        retry: true,
        problem: Some("date"),
        ..base.clone()
    };
    let sparse = ScreenContext {
        reply: ReplyContext {
            code: Some("000.00.12.H58-240315-0007".into()),
            status: Some("Mới đăng ký".into()),
            status_code: Some(1),
            hotline: None,
            ..base.reply.clone()
        },
        problem: Some("short"),
        ..base.clone()
    };
    vec![full, sparse, base]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_screens_fit_with_and_without_accents() {
        for accents in [false, true] {
            let renderer = ScreenRenderer::load(None, accents).unwrap();
            for screen in Screen::ALL {
                for ctx in sample_contexts(accents) {
                    let shown = renderer.render(screen, &ctx).unwrap();
                    let (length, limit, encoding) = screen_length(&shown.text);
                    assert!(length <= limit, "{screen:?} {length}: {}", shown.text);
                    assert!(!shown.text.is_empty(), "{screen:?}");
                    if !accents {
                        assert_eq!(encoding, Encoding::Gsm7, "{}", shown.text);
                    }
                }
            }
        }
    }

    #[test]
    fn menus_list_their_choices() {
        let renderer = ScreenRenderer::load(None, false).unwrap();
        let ctx = &sample_contexts(false)[0];
        let choose = renderer.render(Screen::Choose, ctx).unwrap().text;
        assert!(choose.contains("1. 000.00.12.G58-240315-0007"), "{choose}");
        assert!(choose.contains("3. 000.00.12.K58-240315-0007"), "{choose}");
        let menu = renderer
            .render(Screen::Menu, &sample_contexts(false)[2])
            .unwrap()
            .text;
        assert!(menu.starts_with("Tra cuu ho so"), "{menu}");
        assert!(menu.contains("1. Tra cuu theo ma ho so"), "{menu}");
    }

    fn dir_with(name: &str, source: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), source).unwrap();
        dir
    }

    #[test]
    fn a_screen_over_the_limit_is_refused_at_load_with_its_length() {
        let long = "Xin chao. ".repeat(20);
        let dir = dir_with("help.j2", &long);
        let error = ScreenRenderer::load(Some(dir.path()), false).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("help.j2"), "{text}");
        assert!(text.contains("over the USSD screen limit of 182"), "{text}");
        // 90 accented characters: over a UCS-2 screen (80), so shown unaccented (182).
        let dir = dir_with("help.j2", &"Hướng dẫn ".repeat(9));
        let renderer = ScreenRenderer::load(Some(dir.path()), true).unwrap();
        let shown = renderer
            .render(Screen::Help, &sample_contexts(true)[0])
            .unwrap();
        assert_eq!(shown.encoding, Encoding::Gsm7);
        assert!(
            shown.text.starts_with("Huong dan Huong dan"),
            "{}",
            shown.text
        );
        // Short enough: accents kept.
        let dir = dir_with("help.j2", "Hướng dẫn");
        let renderer = ScreenRenderer::load(Some(dir.path()), true).unwrap();
        let shown = renderer
            .render(Screen::Help, &sample_contexts(true)[0])
            .unwrap();
        assert_eq!(
            (shown.text.as_str(), shown.encoding),
            ("Hướng dẫn", Encoding::Ucs2)
        );
    }

    #[test]
    fn unknown_variables_and_syntax_errors_are_refused_with_the_line() {
        let dir = dir_with("menu.j2", "1. Tra cuu\n2. {{ hotlne }}");
        let error = ScreenRenderer::load(Some(dir.path()), false).unwrap_err();
        assert!(error.to_string().contains("menu.j2"), "{error}");
        let dir = dir_with("choose.j2", "{% for c in choices %}{{ c }}");
        let error = ScreenRenderer::load(Some(dir.path()), false).unwrap_err();
        assert!(error.to_string().contains("choose.j2"), "{error}");
    }

    #[test]
    fn a_long_status_is_fitted_by_shortening_the_procedure() {
        let renderer = ScreenRenderer::load(None, true).unwrap();
        let mut ctx = sample_contexts(true)[0].clone();
        ctx.reply.procedure = Some("Thủ tục ".repeat(30));
        let shown = renderer.render(Screen::Found, &ctx).unwrap();
        let (length, limit, _) = screen_length(&shown.text);
        assert!(length <= limit, "{}", shown.text);
        assert!(
            shown.text.contains("000.00.12.H58-240315-0007"),
            "{}",
            shown.text
        );
    }
}
