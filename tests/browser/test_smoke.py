def test_sign_in_page_renders_in_chromium(browser, live_server):
    browser.get(live_server.url + "/login")
    assert browser.find_element("css selector", "input[name=username]").is_displayed()
    assert browser.find_element("css selector", "input[name=password]").is_displayed()
    assert len(browser.find_elements("css selector", "button[type=submit]")) == 1
    # The strict CSP must not block our own stylesheet: no console CSP violations.
    logs = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert logs == []
