package web

import "strings"

// DefaultBotUserAgents returns the lower-case User-Agent substrings of crawlers,
// link previewers and monitoring robots whose calls are answered 200 and
// dropped. Headless browsers ("HeadlessChrome") are deliberately absent:
// real storefront tests and some accessibility tools run them, and crawlers
// that use them mostly also run no storefront JavaScript that reaches us.
// Add it through Config.BotUserAgents if your traffic says otherwise.
func DefaultBotUserAgents() []string {
	return []string{
		"googlebot", "adsbot-google", "mediapartners-google", "apis-google", "google-inspectiontool",
		"bingbot", "bingpreview", "msnbot", "yandexbot", "baiduspider", "duckduckbot", "slurp",
		"applebot", "ahrefsbot", "semrushbot", "mj12bot", "dotbot", "petalbot", "bytespider",
		"gptbot", "chatgpt-user", "ccbot", "claudebot", "amazonbot", "facebookexternalhit",
		"facebookcatalog", "twitterbot", "linkedinbot", "pinterestbot", "slackbot", "discordbot",
		"telegrambot", "whatsapp", "embedly", "uptimerobot", "pingdom", "statuscake",
		"site24x7", "chrome-lighthouse", "ptst/", "crawler", "spider",
	}
}

// isBot reports whether any of the user agents contains a bot substring.
func isBot(list []string, agents ...string) bool {
	for _, ua := range agents {
		if ua == "" {
			continue
		}
		ua = strings.ToLower(ua)
		for _, b := range list {
			if b != "" && strings.Contains(ua, b) {
				return true
			}
		}
	}
	return false
}
