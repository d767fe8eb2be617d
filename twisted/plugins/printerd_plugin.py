from twisted.application.service import ServiceMaker

printerd = ServiceMaker(
    "printerd",
    "printerd.tap",
    "Network receipt printer stand-in: ESC/POS on a raw port, receipts in SQLite, HTTP API",
    "printerd",
)
