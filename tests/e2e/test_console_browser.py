"""The console in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by
Selenium against a live server. Staff create a tenant with its admin, suspend and reactivate it,
create a key and see its secret once, and open the usage chart; support staff cannot cancel."""

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from apikeys.models import ApiKey, key_digest
from tenants.models import Tenant
from tests.conftest import IN_CI, PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        if IN_CI:
            pytest.fail("chromium and chromium-driver are required under CI (make test installs them).")
        pytest.skip("chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations are logged there
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.implicitly_wait(5)
    yield chrome
    chrome.quit()


def log_in(browser, live_server, email):
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(email)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD + Keys.ENTER)
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "dashboard")))


def run_action(browser, live_server, tenant, action):
    browser.get(f"{live_server.url}/admin/tenants/tenant/")
    browser.find_element(By.CSS_SELECTOR, f"input[name='_selected_action'][value='{tenant.id}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value(action)
    browser.find_element(By.NAME, "index").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "confirm-status"))
    )


def confirm(browser):
    """Clicks the confirmation and waits for the list to come back with its message: the click alone
    returns before the server has answered."""
    browser.find_element(By.ID, "confirm-status").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"), "tenant(s)")
    )


def test_staff_run_a_tenant_from_the_console(browser, live_server, world, tmp_path):
    log_in(browser, live_server, world.staff.email)
    assert "Recommender console" in browser.title

    browser.get(f"{live_server.url}/admin/tenants/tenant/add/")
    browser.find_element(By.NAME, "name").send_keys("Initech")
    slug = browser.find_element(By.NAME, "slug")
    slug.clear()
    slug.send_keys("initech")
    Select(browser.find_element(By.NAME, "plan")).select_by_value("pro")
    browser.find_element(By.NAME, "admin_email").send_keys("boss@initech.test")
    browser.find_element(By.NAME, "admin_password").send_keys("Initech-boss-pass-9")
    browser.find_element(By.NAME, "_save").click()
    WebDriverWait(browser, 10).until(lambda page: page.current_url.endswith("/admin/tenants/tenant/"))
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.users.get().email == "boss@initech.test"

    run_action(browser, live_server, tenant, "suspend_tenants")
    assert "Are you sure" in browser.page_source
    confirm(browser)
    tenant.refresh_from_db()
    assert tenant.status == "suspended"
    run_action(browser, live_server, tenant, "activate_tenants")
    confirm(browser)
    tenant.refresh_from_db()
    assert tenant.status == "active"

    browser.get(f"{live_server.url}/admin/apikeys/apikey/add/")
    browser.find_element(By.CSS_SELECTOR, ".select2-selection").click()
    browser.find_element(By.CSS_SELECTOR, ".select2-search__field").send_keys("Initech")
    WebDriverWait(browser, 10).until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".select2-results__option"), "Initech"
        )
    )
    browser.find_element(By.CSS_SELECTOR, ".select2-results__option").click()
    browser.find_element(By.NAME, "name").send_keys("production")
    browser.find_element(By.NAME, "_save").click()
    secret = browser.find_element(By.CSS_SELECTOR, "code.api-key-secret").text
    api_key = ApiKey.objects.get(tenant=tenant, name="production")
    assert secret.startswith("rk_") and api_key.key_hash == key_digest(secret)
    browser.save_screenshot(str(tmp_path / "secret-once.png"))
    browser.get(f"{live_server.url}/admin/apikeys/apikey/{api_key.id}/change/")
    assert api_key.prefix in browser.page_source and secret not in browser.page_source

    browser.get(f"{live_server.url}/admin/tenants/tenant/{tenant.id}/change/")
    chart = browser.find_element(By.CSS_SELECTOR, "svg.usage-chart")
    assert chart.is_displayed() and chart.size["width"] > 300
    browser.save_screenshot(str(tmp_path / "usage-chart.png"))


def test_support_staff_are_refused_a_cancel(browser, live_server, world):
    log_in(browser, live_server, world.support.email)
    browser.get(f"{live_server.url}/admin/tenants/tenant/")
    offered = [
        option.get_attribute("value") for option in Select(browser.find_element(By.NAME, "action")).options
    ]
    assert "suspend_tenants" in offered and "cancel_tenants" not in offered
    run_action(browser, live_server, world.tenant, "suspend_tenants")
    confirm(browser)
    world.tenant.refresh_from_db()
    assert world.tenant.status == "suspended"


def test_the_docs_render_under_the_strict_content_security_policy(browser, live_server, db):
    browser.get_log("browser")  # what earlier pages logged
    browser.get(f"{live_server.url}/docs")
    WebDriverWait(browser, 10).until(lambda page: len(page.find_elements(By.CSS_SELECTOR, ".opblock")) > 20)
    browser.get(f"{live_server.url}/redoc")
    WebDriverWait(browser, 10).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), "/api/v1/recommendations")
    )
    refused = [
        line["message"] for line in browser.get_log("browser") if "Content Security Policy" in line["message"]
    ]
    # Only ReDoc's logo, from its makers' site, is refused: the docs load nothing from outside.
    assert all("img-src" in message and "cdn.redoc.ly" in message for message in refused), refused
