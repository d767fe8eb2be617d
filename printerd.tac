# twistd -y printerd.tac: printerd configured from PRINTERD_* environment variables
# (and the TOML file named by PRINTERD_CONFIG, if any).
from twisted.application.service import Application

from printerd.tap import Options, makeService

options = Options()
options.parseOptions([])
application = Application("printerd")
# The root service also sets the application's log observer when log_format is json.
makeService(options).setServiceParent(application)
