# ruff: noqa  -- the seed article's snippet, verbatim but re-indented; tests substitute host and token
import requests

# 目标端点配置
url = "https://apis.alltick.co/stock/tick?region=US&code=AAPL"
headers = {
    "accept": "application/json",
    "token": "your_api_token",  # 请替换为你申请的密钥
}
res = requests.get(url, headers=headers)
if res.status_code == 200:
    tick_data = res.json().get("data", {})
    print("苹果公司实时切片:", tick_data)
else:
    print("网关请求受阻,状态码:", res.status_code)
