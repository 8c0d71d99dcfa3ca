import factory

from accounts import roles
from accounts.models import User
from accounts.services import set_role

PASSWORD = "pass-12345-word"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.Sequence(lambda n: f"用户{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        self.save()
        if extracted:
            set_role(user=self, role=extracted)


def make_user(role: str = roles.BUYER, **kwargs) -> User:
    return UserFactory(role=role, **kwargs)
