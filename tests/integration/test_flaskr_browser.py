"""
test_flaskr_browser.py — examples/flaskr used in a real browser: headless
Chromium (chromium, chromium-driver, python3-selenium) registers a user,
sees the flash message of a second registration under the same name and of
a wrong password, logs in, writes a post (the page shows its escaped title,
the author line and an Edit link), edits it, deletes it after the confirm
dialog, and logs out. Fails (never skips) without Chromium.
"""
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

srv = None
driver = None


def by_css(css):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css)


def all_css(css):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


def mark_page():
    driver.execute_script("window.cfOldPage = true")


def wait_new_page():
    """Until the page marked by mark_page was replaced by a loaded one (the
    POSTs hash passwords on the thread pool: on a busy machine the next
    page takes a while)."""
    H.wait_until(lambda: driver.execute_script(
        "return window.cfOldPage === undefined && document.readyState === 'complete'"),
        20, interval=0.05, what="the next page")


def click(el):
    mark_page()
    el.click()
    wait_new_page()


def fill_and_submit(fields, submit="input[type=submit]"):
    for name, value in fields.items():
        el = by_css(f"[name={name}]")
        el.clear()
        el.send_keys(value)
    click(by_css(submit))


def flashes():
    return [e.text for e in all_css(".flash")]


def path():
    return "/" + driver.current_url.split("/", 3)[3]


def t_register():
    driver.get(srv.url("/"))
    click(by_css("nav a[href='/auth/register']"))
    eq(path(), "/auth/register", "the Register link")
    fill_and_submit({"username": "ada", "password": "lovelace"})
    eq(path(), "/auth/login", "after registering")
    driver.get(srv.url("/auth/register"))
    fill_and_submit({"username": "ada", "password": "other"})
    eq(flashes(), ["User ada is already registered."], "flash")


def t_wrong_password():
    driver.get(srv.url("/auth/login"))
    fill_and_submit({"username": "ada", "password": "babbage"})
    eq(flashes(), ["Incorrect password."], "flash")
    driver.get(srv.url("/auth/login"))
    eq(flashes(), [], "shown once")


def t_login():
    fill_and_submit({"username": "ada", "password": "lovelace"})
    eq(path(), "/", "after logging in")
    eq(by_css("nav .user").text, "ada", "the user in the nav")
    check(by_css("nav a[href='/auth/logout']").text == "Log Out", "Log Out link")


def t_write_post():
    click(by_css("a[href='/create']"))
    fill_and_submit({"title": "<b>Notes</b> & more", "body": "first line\nsecond line"})
    eq(path(), "/", "back on the index")
    eq(by_css("article h1").text, "<b>Notes</b> & more", "the title as text, not markup")
    eq(len(all_css("article h1 b")), 0, "no <b> element made from the title")
    about = by_css("article .about").text
    check(about.startswith("by ada on 20"), f"author line {about!r}")
    eq(by_css("article .body").text, "first line\nsecond line", "body")


def t_edit_post():
    click(by_css("article a.action"))
    check(path().endswith("/update"), f"edit page {path()}")
    eq(by_css("[name=title]").get_attribute("value"), "<b>Notes</b> & more", "form prefilled")
    fill_and_submit({"title": "Edited"})
    eq(by_css("article h1").text, "Edited", "edited title")


def t_delete_post():
    click(by_css("article a.action"))
    mark_page()
    by_css("input.danger").click()
    driver.switch_to.alert.accept()  # "Are you sure?"
    wait_new_page()
    eq(path(), "/", "after deleting")
    eq(all_css("article"), [], "no posts")
    eq(by_css(".empty").text, "No posts yet.", "empty index")


def t_logout():
    click(by_css("nav a[href='/auth/logout']"))
    check(by_css("nav a[href='/auth/login']").text == "Log In", "logged out")


def main():
    global srv, driver
    H.watchdog(180)
    exe = H.example_path("flaskr")
    tmp = tempfile.mkdtemp(prefix="cf-flaskr-browser-")
    env = {"DATABASE_URL": f"sqlite:///{tmp}/flaskr.sqlite", "SECRET_KEY": "browser-test"}
    r = subprocess.run([exe, "--init-db"], env=dict(os.environ, **env), capture_output=True,
                       text=True, timeout=30)
    failures, errors = [], []
    srv = H.Server(exe, env=env)
    try:
        eq(r.returncode, 0, f"--init-db: {r.stderr}")
        srv.start()
        driver = H.chromium()
        failures = H.run_tests(H.collect(globals()))
    except AssertionError as e:
        print(f"FAIL setup: {e}")
        errors.append("setup")
    finally:
        if driver is not None:
            driver.quit()
        try:
            H.stop_and_check(srv, expect_status=0)
        except AssertionError as e:
            print(f"FAIL shutdown: {e}")
            errors.append("shutdown")
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
